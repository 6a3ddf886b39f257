#!/usr/bin/env bash
# Local Apache Kafka (KRaft, single node) assembled from Maven Central jars.
#
#   infra/kafka.sh build    fetch the broker's jars into infra/kafka/lib (once; Maven caches)
#   infra/kafka.sh start    format the data dir once, start the broker, wait until it accepts
#   infra/kafka.sh stop     SIGTERM (controlled shutdown) and wait for the process to exit
#   infra/kafka.sh status   exit 0 when the broker answers on its port
#
# Data lives in $HEAN_HOME/kafka (default .hean/kafka in the repo) and survives stop/start:
# the node is formatted only when meta.properties is missing, with the cluster id saved beside it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
HEAN_HOME="${HEAN_HOME:-$ROOT/.hean}"
BASE="$HEAN_HOME/kafka"
PORT="${HEAN_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${HEAN_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
LIB="$HERE/kafka/lib"
PID_FILE="$BASE/kafka.pid"
LOG_FILE="$BASE/server.out"
HEAP="${HEAN_KAFKA_HEAP:-512m}"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
running_pid() {
  [ -f "$PID_FILE" ] || return 1
  local pid; pid="$(cat "$PID_FILE")"
  kill -0 "$pid" 2>/dev/null && grep -q kafka.Kafka "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

build() {
  if [ -f "$LIB/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || { echo "kafka: mvn not found; install Maven (apt-get install maven)" >&2; exit 1; }
  rm -rf "$LIB"
  (cd "$HERE/kafka" && mvn -B -q package)
  touch "$LIB/.complete"
}

start() {
  build
  mkdir -p "$BASE/data"
  if pid="$(running_pid)"; then
    echo "kafka: already running (pid $pid) on 127.0.0.1:$PORT"; return 0
  fi
  if [ -f "$PID_FILE" ]; then
    echo "kafka: removing stale pid file $PID_FILE (pid $(cat "$PID_FILE") is not a running broker)"
    rm -f "$PID_FILE"
  fi
  if port_open "$PORT"; then
    echo "kafka: port $PORT is in use by another process; stop it or set HEAN_KAFKA_PORT" >&2; exit 1
  fi
  sed -e "s#@DATA_DIR@#$BASE/data#" -e "s#@PORT@#$PORT#" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#" \
    "$HERE/kafka/config/server.properties.in" > "$BASE/server.properties"
  local cp="$LIB/*"
  local tool_log="-Dlog4j2.configurationFile=$HERE/kafka/config/tools-log4j2.properties"
  if [ ! -f "$BASE/data/meta.properties" ]; then
    local cluster_id
    cluster_id="$(java "$tool_log" -cp "$cp" kafka.tools.StorageTool random-uuid | tail -n 1)"
    echo "$cluster_id" > "$BASE/cluster.id"
    java "$tool_log" -cp "$cp" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$BASE/server.properties" > "$BASE/format.out" 2>&1 \
      || { echo "kafka: format failed:" >&2; cat "$BASE/format.out" >&2; exit 1; }
  fi
  nohup java "-Xms$HEAP" "-Xmx$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$HERE/kafka/config/log4j2.properties" \
    -cp "$cp" kafka.Kafka "$BASE/server.properties" > "$LOG_FILE" 2>&1 < /dev/null &
  echo $! > "$PID_FILE"
  for _ in $(seq 1 120); do
    if port_open "$PORT"; then echo "kafka: up on 127.0.0.1:$PORT (pid $(cat "$PID_FILE"), data $BASE/data)"; return 0; fi
    if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
      echo "kafka: broker exited during start; last lines of $LOG_FILE:" >&2; tail -n 40 "$LOG_FILE" >&2
      rm -f "$PID_FILE"; exit 1
    fi
    sleep 0.5
  done
  echo "kafka: not accepting on $PORT after 60 s; see $LOG_FILE" >&2; exit 1
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then echo "kafka: not running"; rm -f "$PID_FILE"; return 0; fi
  kill "$pid"
  for _ in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PID_FILE"; echo "kafka: stopped"; return 0; }
    sleep 0.5
  done
  echo "kafka: pid $pid ignored SIGTERM for 60 s; sending SIGKILL" >&2
  kill -9 "$pid" 2>/dev/null || true; rm -f "$PID_FILE"
}

status() {
  if pid="$(running_pid)" && port_open "$PORT"; then echo "kafka: running (pid $pid) on 127.0.0.1:$PORT"; return 0; fi
  echo "kafka: not running"; return 1
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 build|start|stop|status" >&2; exit 2 ;;
esac
