#!/usr/bin/env bash
# Configures and builds matid into build/ (executables in build/bin/).
# Uses ccache when installed; two parallel jobs by default (MATID_JOBS).
# MATID_BUILD_DIR, MATID_BUILD_TYPE and MATID_CMAKE_ARGS (e.g.
# "-DMATID_SANITIZE=address") select other builds.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${MATID_BUILD_DIR:-build}
jobs=${MATID_JOBS:-2}
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  # shellcheck disable=SC2086  # MATID_CMAKE_ARGS is a list of arguments
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=${MATID_BUILD_TYPE:-RelWithDebInfo} ${MATID_CMAKE_ARGS:-}
fi
cmake --build "$build_dir" -j"$jobs"
