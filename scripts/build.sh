#!/usr/bin/env bash
# build.sh — install what is missing (scripts/deps.sh), configure and build
# gemmac into build/ with CMake.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGM_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
