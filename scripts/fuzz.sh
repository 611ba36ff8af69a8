#!/usr/bin/env bash
# Searches for crashes with libFuzzer. Builds the fuzz targets (fuzz/) with
# clang, ASan and UBSan in build-fuzz/, then runs each target for a bounded
# time starting from its seed corpus in fuzz/corpus/<target>/. New
# interesting inputs go to build-fuzz/corpus/<target>/, crashes to
# build-fuzz/crashes/<target>/. Exit code 1 if any target crashed.
#
#   scripts/fuzz.sh [seconds_per_target (default 90)] [target ...]
#   targets: preprocess request request_parse result_message (default: all)
#
# To keep a finding as a regression input, copy it into fuzz/corpus/<target>/
# (ctest replays that folder in every build).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-90}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(preprocess request request_parse result_message)

command -v clang++ >/dev/null || bash scripts/install-deps.sh
if [ ! -f build-fuzz/CMakeCache.txt ]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMATID_FUZZ=ON -DMATID_SANITIZE=address -DMATID_BUILD_TESTS=OFF
fi
cmake --build build-fuzz -j"${MATID_JOBS:-2}" --target "${targets[@]/%/_fuzzer}"

failed=()
for target in "${targets[@]}"; do
  work=build-fuzz/corpus/$target
  crashes=build-fuzz/crashes/$target
  mkdir -p "$work" "$crashes"
  echo "== $target: ${seconds}s"
  # -rss_limit_mb bounds memory per input; -timeout flags a slow input as a hang.
  rc=0
  # OpenCV's own pixel cap for formats the server cannot size before decoding
  # (preprocess_fuzzer decodes them when its input asks to).
  OPENCV_LOG_LEVEL=SILENT OPENCV_IO_MAX_IMAGE_PIXELS=4194304 UBSAN_OPTIONS=print_stacktrace=1 "build-fuzz/fuzz/${target}_fuzzer" \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$crashes/" \
    "$work" "fuzz/corpus/$target" >"build-fuzz/$target.log" 2>&1 || rc=$?
  grep -E "^#[0-9]+ +(INITED|DONE)|stat::number_of_executed_units|==[0-9]+== ?ERROR|invariant broken|SUMMARY" \
    "build-fuzz/$target.log" || true
  if [ "$rc" -ne 0 ] || ls "$crashes"/* >/dev/null 2>&1; then
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: crashes in: ${failed[*]} (inputs in build-fuzz/crashes/, logs in build-fuzz/*.log)"
  exit 1
fi
echo "fuzz.sh: no crash in ${targets[*]} (${seconds}s each)"
