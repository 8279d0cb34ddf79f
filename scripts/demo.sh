#!/usr/bin/env bash
# The README's first command: installs the dependencies (idempotent), builds the `teachformer` binary in build/ (the
# same tree scripts/test.sh uses) and runs the main job, `teachformer experiment` (preset demo), on built-in PET/CT
# phantoms. Extra arguments go to `teachformer experiment` (e.g. --kind mri, --preset tiny, -o <folder>; default experiments/demo).
# The experiment ends by printing the path of its report (<folder>/report/index.html, offline HTML).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
cmake --preset dev >/dev/null
cmake --build build -j"$(nproc)" --target teachformer
build/apps/teachformer/teachformer doctor
exec build/apps/teachformer/teachformer experiment "$@"   # default output folder: experiments/demo
