#!/usr/bin/env bash
# The test command: installs dependencies (Debian packages), builds, and runs
# every test suite with ctest; then builds again with AddressSanitizer +
# UndefinedBehaviorSanitizer (build-asan/, Debug) and runs every suite there
# too (MATID_SKIP_SANITIZERS=1 skips that pass). Exit code 0 only when all pass.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/install-deps.sh
bash scripts/build.sh
built=$(date +%s)
(cd "${MATID_BUILD_DIR:-build}" && ctest --output-on-failure -j2 --timeout 600)
tested=$(date +%s)
echo "test.sh: install+build $((built - start))s, tests $((tested - built))s"
if [ "${MATID_SKIP_SANITIZERS:-0}" != 1 ]; then
  MATID_BUILD_DIR=build-asan MATID_BUILD_TYPE=Debug MATID_CMAKE_ARGS="-DMATID_SANITIZE=address" \
    bash scripts/build.sh
  asan_built=$(date +%s)
  (cd build-asan && UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j2 --timeout 900)
  echo "test.sh: ASan/UBSan build $(( asan_built - tested ))s, tests $(( $(date +%s) - asan_built ))s"
fi
