#!/usr/bin/env bash
# Installs what HEAN needs on a fresh Debian machine, skipping what is already there:
#   system: Java 17+, Maven, redis-server, prometheus (+ promtool), docker-compose (only to validate
#           docker-compose.yml; no engine is needed) from apt, as root or with sudo
#   python: a virtualenv in .venv with `pip install -e '.[dev]'` (again only when pyproject changes)
#   kafka:  the broker's jars from Maven Central (infra/kafka.sh build)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="${HEAN_VENV:-$ROOT/.venv}"

apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if [ -z "${HEAN_APT_UPDATED:-}" ]; then $sudo apt-get update -qq; export HEAN_APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" > /dev/null
}

missing=()
command -v java > /dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn > /dev/null || missing+=(maven)
command -v redis-server > /dev/null || missing+=(redis-server)
command -v prometheus > /dev/null || missing+=(prometheus)
command -v docker-compose > /dev/null || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install: apt packages ${missing[*]}"
  apt_install "${missing[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "install: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.hean-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "install: python packages (pip install -e '.[dev]')"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e '.[dev]'
  touch "$stamp"
fi

bash infra/kafka.sh build
echo "install: done"
