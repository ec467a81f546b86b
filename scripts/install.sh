#!/usr/bin/env bash
# Install everything WMS needs into .venv (Python), .venv-checkov (checkov) and the system (Java 17 for TorchServe,
# nginx in front of it, buildah, docker-registry and debootstrap for images).
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
  echo "installing nginx, the front door of the local TorchServe (wms/serving/front_door.py)"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
fi

# Images without a daemon (wms/deployment/container_image.py, tests/images): buildah builds, docker-registry stands in for ECR in the
# tests, debootstrap makes a base image without any public registry. Prometheus (and promtool) for the monitoring
# rules, their tests and `wms monitor start` on the local profile. Chromium for the tests of the page at / and the
# screenshots in docs/ (driven by Playwright, which uses it instead of a browser of its own).
missing=()
for tool in buildah:buildah docker-registry:docker-registry debootstrap:debootstrap promtool:prometheus chromium:chromium; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (image builds without a Docker engine, Prometheus)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# checkov pins many packages that clash with the project's: it gets a virtual environment of its own.
CHECKOV_WANT=$(sha256sum requirements-checkov.lock | cut -c1-16)
if [ ! -f .venv-checkov/.wms-installed ] || [ "$(cat .venv-checkov/.wms-installed)" != "$CHECKOV_WANT" ]; then
  echo "installing checkov into .venv-checkov"
  [ -x .venv-checkov/bin/python ] || "$PYTHON" -m venv .venv-checkov
  .venv-checkov/bin/python -m pip install --quiet -r requirements-checkov.lock
  echo "$CHECKOV_WANT" > .venv-checkov/.wms-installed
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
