#!/usr/bin/env bash
# The test command: installs dependencies (Debian packages), builds, and runs
# every test suite with ctest; then builds again with AddressSanitizer +
# UndefinedBehaviorSanitizer (build-asan/, Debug) and runs every suite there
# too; then builds the units that do not link LibTorch with ThreadSanitizer
# (build-tsan/) and runs them (MATID_SKIP_SANITIZERS=1 skips both passes).
# Before the first ctest run it builds the container images (scripts/
# build-images.sh, dockerd started if needed) for the docker-compose
# end-to-end test; MATID_SKIP_CONTAINERS=1 skips both, and says so.
# It prints the machine first (CPU model, cores, avx512_bf16/amx_bf16/
# avx512_vnni: scripts/machine.py). Exit code 0 only when all pass.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/install-deps.sh
# Where this run ran: CPU model, cores, and the flags that pick numeric kernels.
/usr/bin/python3 -m scripts.machine
bash scripts/build.sh
built=$(date +%s)
if [ "${MATID_SKIP_CONTAINERS:-0}" = 1 ]; then
  echo "################################################################################"
  echo "# test.sh: MATID_SKIP_CONTAINERS=1: NO container image is built and the"
  echo "# docker-compose end-to-end test is SKIPPED. Containers are not tested."
  echo "################################################################################"
else
  # The images for tests/compose_e2e_test.py (dockerd started and stopped here
  # if it was not running).
  bash scripts/with-dockerd.sh bash scripts/build-images.sh
fi
images=$(date +%s)
(cd "${MATID_BUILD_DIR:-build}" && ctest --output-on-failure -j2 --timeout 600)
tested=$(date +%s)
echo "test.sh: install+build $((built - start))s, images $((images - built))s, tests $((tested - images))s"
if [ "${MATID_SKIP_SANITIZERS:-0}" != 1 ]; then
  MATID_BUILD_DIR=build-asan MATID_BUILD_TYPE=Debug MATID_CMAKE_ARGS="-DMATID_SANITIZE=address" \
    bash scripts/build.sh
  asan_built=$(date +%s)
  # The container test is not repeated: its programs are the images' Release builds.
  (cd build-asan && UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j2 --timeout 900 \
     -E '^compose_e2e_test$')
  echo "test.sh: ASan/UBSan build $(( asan_built - tested ))s, tests $(( $(date +%s) - asan_built ))s"
  # ThreadSanitizer: LibTorch, gRPC and protobuf are not instrumented (see
  # tests/tsan.supp), so the pass covers our threads: batcher, the serving
  # stack in-process with the fake model, spool, bridge, result message.
  tsan_tests=(batch_scheduler_test batcher_test result_publisher_test matid_server_test model_manager_test serving_table_test version_leases_test spool_test bridge_test result_message_test)
  if [ ! -f build-tsan/CMakeCache.txt ]; then
    cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMATID_SANITIZE=thread
  fi
  tsan_start=$(date +%s)
  cmake --build build-tsan -j"${MATID_JOBS:-2}" --target "${tsan_tests[@]}"
  tsan_built=$(date +%s)
  (cd build-tsan && TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/../tests/tsan.supp" \
    ctest --output-on-failure --timeout 600 -R "^($(IFS='|'; echo "${tsan_tests[*]}"))\$")
  echo "test.sh: TSan build $(( tsan_built - tsan_start ))s, tests $(( $(date +%s) - tsan_built ))s"
fi
