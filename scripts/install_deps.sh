#!/usr/bin/env bash
# Installs TeachFormer's build and test dependencies from Debian 12's archive. Idempotent.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build ccache pkg-config git
  clang libclang-rt-14-dev lld
  libtorch-dev libopenblas0-openmp libdnnl-dev
  libinsighttoolkit5-dev
  libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  zlib1g-dev
  libgloo-dev
  libdcmtk-dev dicom3tools python3-pydicom
  nodejs chromium
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#PKGS[@]} packages already installed"
else
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
# The report's web libraries (NiiVue, Vega-Lite; puppeteer-core drives the system Chromium and downloads no browser),
# exactly as pinned in web/report/package-lock.json. Skipped when already installed from the same lockfile.
WEB="$(cd "$(dirname "$0")/.." && pwd)/web/report"
if ! cmp -s "$WEB/package-lock.json" "$WEB/node_modules/.package-lock-installed.json" 2>/dev/null; then
  (cd "$WEB" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  cp "$WEB/package-lock.json" "$WEB/node_modules/.package-lock-installed.json"
else
  echo "install_deps: web/report/node_modules up to date"
fi
