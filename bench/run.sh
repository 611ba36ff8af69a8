#!/usr/bin/env bash
# The speed suite (issues 6 and 12), in one go, about 18 minutes on 2 cores
# (the issue-6 part about 12): for the trained Fashion-MNIST model and a random ResNet-18 at
# 224x224, the in-process ceiling (matid-inprocess-bench: one pipeline with
# 1 or 2 LibTorch threads, or two pipelines side by side) and matid-server
# under a closed-loop concurrency sweep (matid-bench), with dynamic batching
# on and off, LibTorch threads 1 and 2, 1 and 2 inference workers, fp32 and
# (ResNet-18) int8, plus one open-loop step (Poisson arrivals) and
# BatchClassify (16 images per call) for the small model, whose per-call cost
# is about half its inference. Then the headline comparisons again,
# interleaved: MATID_BENCH_ROUNDS rounds (default 3) of the in-process
# ceiling right before the best served configuration, since this VM's speed
# drifts by tens of percent within minutes; the summary reports the median
# of the rounds. Writes bench/results/run-*.json, prints the ratios against
# the targets and appends them to bench/RESULTS.md (date, machine). Then the
# camera-resolution step (bench/camera_resolution.py) and a model swap under
# load (bench/model_swap.py). About 21 minutes in all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
out=out/bench
results=bench/results
mkdir -p "$out" "$results"
step=${MATID_BENCH_STEP_SECONDS:-5}
rounds=${MATID_BENCH_ROUNDS:-3}
rm -f "$results"/run-*.json

[ -f models/fashion-mnist/metadata.json ] || /usr/bin/python3 -m model_export all --quick --out models/fashion-mnist
[ -f "$out/resnet18/metadata.json" ] || /usr/bin/python3 -m model_export.make_resnet18 --out "$out/resnet18"
if [ ! -d "$out/images-fmnist" ]; then
  /usr/bin/python3 -m model_export.fashion_mnist --split test --count 1000 --out "$out/images-fmnist" >/dev/null
fi

# serve NAME MODEL_DIR SERVER_FLAGS... -- BENCH_FLAGS...
serve() {
  local name=$1 model=$2; shift 2
  local server_flags=() bench_flags=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do server_flags+=("$1"); shift; done
  shift
  bench_flags=("$@")
  build/bin/matid-server --model_dir="$model" --host=127.0.0.1 --port=0 --metrics_host=127.0.0.1 \
    --metrics_port=0 "${server_flags[@]}" > "$out/server-$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 600); do grep -q "serving grpc_port" "$out/server-$name.log" && break; sleep 0.1; done
  local grpc metrics
  grpc=$(sed -n 's/.*serving grpc_port=\([0-9]*\).*/\1/p' "$out/server-$name.log")
  metrics=$(sed -n 's/.*metrics_port=\([0-9]*\).*/\1/p' "$out/server-$name.log")
  echo "== served: $name (${server_flags[*]})"
  build/bin/matid-bench --server=127.0.0.1:"$grpc" --metrics_port="$metrics" --server_pid=$pid \
    --step_seconds="$step" \
    --label="$name" --json="$results/run-served-$name.json" "${bench_flags[@]}"
  local rss
  rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  kill -TERM $pid; wait $pid || true
  echo "   peak RSS of the server: $((rss / 1024)) MiB"
  /usr/bin/python3 -c "import json,sys; p=sys.argv[1]; d=json.load(open(p)); d['server_peak_rss_mib']=int(sys.argv[2])//1024; json.dump(d,open(p,'w'),indent=1)" \
    "$results/run-served-$name.json" "$rss"
}

inprocess() {
  local name=$1; shift
  echo "== in-process: $name"
  build/bin/matid-inprocess-bench --seconds=3 --json="$results/run-inprocess-$name.json" "$@"
}

fm=models/fashion-mnist
fm_images=(--images="$out/images-fmnist")
r18=$out/resnet18
r18_images=(--synthetic=256x256x3)

# Names: t<LibTorch threads>-w<inference workers>-batch<max batch>|nobatch.
fm_sweep=(--concurrency=1,2,4,8,16,32,64)
inprocess fmnist-t1 --model_dir=$fm --threads=1 "${fm_images[@]}" --batch_sizes=1,2,4,8,16
inprocess fmnist-t2 --model_dir=$fm --threads=2 "${fm_images[@]}" --batch_sizes=1,2,4,8,16
inprocess fmnist-t1-p2 --model_dir=$fm --threads=1 --pipelines=2 "${fm_images[@]}" --batch_sizes=4,8,16
serve fmnist-t1-w2-batch16 $fm --threads=1 --inference_workers=2 --max_batch_size=16 -- "${fm_images[@]}" "${fm_sweep[@]}"
serve fmnist-t1-w1-batch8 $fm --threads=1 --max_batch_size=8 -- "${fm_images[@]}" --concurrency=1,4,16,64
serve fmnist-t1-w1-nobatch $fm --threads=1 --max_batch_size=1 -- "${fm_images[@]}" --concurrency=1,2,4,8
serve fmnist-t2-w1-batch16 $fm --threads=2 --max_batch_size=16 -- "${fm_images[@]}" --concurrency=1,16,64
serve fmnist-t1-w2-batch16-batchrpc $fm --threads=1 --inference_workers=2 --max_batch_size=16 -- \
  "${fm_images[@]}" --mode=batch --batch_size=16 --concurrency=1,2,4,8
serve fmnist-t1-w2-openloop $fm --threads=1 --inference_workers=2 --max_batch_size=16 -- "${fm_images[@]}" --rate=2000

r18_sweep=(--concurrency=1,2,4,8,16)
inprocess r18-fp32-t2 --model_dir=$r18 --threads=2 "${r18_images[@]}" --batch_sizes=1,2,4,8
inprocess r18-fp32-t1 --model_dir=$r18 --threads=1 "${r18_images[@]}" --batch_sizes=1,4
inprocess r18-fp32-t1-p2 --model_dir=$r18 --threads=1 --pipelines=2 "${r18_images[@]}" --batch_sizes=1,4
inprocess r18-int8-t2 --model_dir=$r18 --int8 --threads=2 "${r18_images[@]}" --batch_sizes=1,2,4,8
serve r18-fp32-t2-w1-batch8 $r18 --threads=2 --max_batch_size=8 -- "${r18_images[@]}" "${r18_sweep[@]}"
serve r18-fp32-t2-w1-nobatch $r18 --threads=2 --max_batch_size=1 -- "${r18_images[@]}" --concurrency=1,2,4
serve r18-fp32-t1-w2-batch8 $r18 --threads=1 --inference_workers=2 --max_batch_size=8 -- "${r18_images[@]}" "${r18_sweep[@]}"
serve r18-int8-t2-w1-batch8 $r18 --int8 --threads=2 --max_batch_size=8 -- "${r18_images[@]}" --concurrency=1,16
serve r18-int8-t1-w2-batch8 $r18 --int8 --threads=1 --inference_workers=2 --max_batch_size=8 -- "${r18_images[@]}" "${r18_sweep[@]}"

# Interleaved rounds: each served figure right after its in-process ceiling.
# Ceiling = the better of one pipeline with 2 LibTorch threads and two
# pipelines with 1 thread each; served = the best configuration of the sweeps.
for r in $(seq 1 "$rounds"); do
  inprocess pair-fmnist-t2-r$r --model_dir=$fm --threads=2 "${fm_images[@]}" --batch_sizes=16 --seconds=2
  inprocess pair-fmnist-t1-p2-r$r --model_dir=$fm --threads=1 --pipelines=2 "${fm_images[@]}" \
    --batch_sizes=16 --seconds=2
  serve pair-fmnist-t1-w2-batch16-r$r $fm --threads=1 --inference_workers=2 --max_batch_size=16 -- \
    "${fm_images[@]}" --concurrency=1,64 --step_seconds=4
  serve pair-fmnist-t1-w2-batch16-batchrpc-r$r $fm --threads=1 --inference_workers=2 \
    --max_batch_size=16 -- "${fm_images[@]}" --mode=batch --batch_size=16 --concurrency=4 --step_seconds=4
  inprocess pair-r18-t2-r$r --model_dir=$r18 --threads=2 "${r18_images[@]}" --batch_sizes=1,4 --seconds=2
  inprocess pair-r18-t1-p2-r$r --model_dir=$r18 --threads=1 --pipelines=2 "${r18_images[@]}" \
    --batch_sizes=4 --seconds=2
  serve pair-r18-t2-w1-batch8-r$r $r18 --threads=2 --max_batch_size=8 -- "${r18_images[@]}" \
    --concurrency=1 --step_seconds=4
  serve pair-r18-t1-w2-batch8-r$r $r18 --threads=1 --inference_workers=2 --max_batch_size=8 -- \
    "${r18_images[@]}" --concurrency=16 --step_seconds=4
done

/usr/bin/python3 -m bench.summarize "$results" bench/RESULTS.md

# Camera-resolution frames (issue 12): 1080p JPEGs through the server with
# full and reduced decoding, and a 1080p video through the whole box, before
# and after the camera shrinks frames; interleaved rounds, medians printed
# and written to bench/results/camera-resolution.json (about 2 minutes a round).
/usr/bin/python3 -m bench.camera_resolution --rounds "$rounds"
# What each step of decoding a 1080p JPEG costs on one thread (the floor
# under the server-alone figure above), bench/results/jpeg-decode-cost.json.
/usr/bin/python3 -m bench.jpeg_decode_cost --rounds 5

# Model swap under steady load (issue 13): ResNet-18 fp32 and int8, p50/p99
# before, during and after, time to swap (about 1 minute a round).
/usr/bin/python3 -m bench.model_swap --rounds "$rounds"
