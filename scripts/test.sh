#!/usr/bin/env bash
# The test command: installs dependencies (Debian packages), builds, and runs
# every test suite with ctest. Exit code 0 only when all pass.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/install-deps.sh
bash scripts/build.sh
built=$(date +%s)
cd "${MATID_BUILD_DIR:-build}"
ctest --output-on-failure -j2 --timeout 600
end=$(date +%s)
echo "test.sh: install+build $((built - start))s, tests $((end - built))s"
