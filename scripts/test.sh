#!/usr/bin/env bash
# Installs dependencies (idempotent), builds TeachFormer with its tests, and runs the whole test suite.
# Usage: bash scripts/test.sh [extra ctest arguments, e.g. -L unit]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
cmake --preset dev
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
