#!/usr/bin/env bash
# NautilusTrader in a virtualenv of its own (bench-only; bench/nautilus/requirements.txt says why).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/bench/.venv-nautilus"
stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ "$ROOT/bench/nautilus/requirements.txt" -nt "$stamp" ]; then
  echo "bench: installing NautilusTrader into $VENV (bench only)"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q -r "$ROOT/bench/nautilus/requirements.txt"
  touch "$stamp"
fi
