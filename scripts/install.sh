#!/usr/bin/env bash
# Install everything WMS needs into .venv (Python) and the system (Java 17 for TorchServe, nginx in front of it).
# Re-running is cheap: the virtual environment is rebuilt only when requirements.lock or pyproject.toml change.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
STAMP=.venv/.wms-installed
WANT=$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)

if ! command -v java >/dev/null 2>&1; then
  echo "installing Java 17 for TorchServe"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null
fi
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx, the front door of the local TorchServe (wms/front_door.py)"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
fi

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  echo "virtual environment .venv is up to date"
  exit 0
fi

"$PYTHON" -c 'import sys; assert sys.version_info[:2] in ((3, 11), (3, 12)), "WMS needs Python 3.11 or 3.12"'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
echo "installing the locked dependencies into .venv (a few minutes on a fresh machine)"
.venv/bin/python -m pip install --quiet -r requirements.lock
.venv/bin/python -m pip install --quiet --no-deps -e .
echo "$WANT" > "$STAMP"
