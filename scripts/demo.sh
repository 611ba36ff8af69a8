#!/usr/bin/env bash
# The run command: installs dependencies, builds, makes sure a model exists,
# starts matid-server, classifies real Fashion-MNIST test images with
# matid-classify (BatchClassify), shows results, accuracy and the server's
# metrics, then stops the server cleanly. Ctrl-C stops everything too.
#
# Environment: MATID_MODEL_DIR (default models/fashion-mnist),
# MATID_DEMO_IMAGES (default 1000), MATID_PORT (50051),
# MATID_METRICS_PORT (8080).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/install-deps.sh
bash scripts/build.sh

model_dir=${MATID_MODEL_DIR:-models/fashion-mnist}
images=${MATID_DEMO_IMAGES:-1000}
port=${MATID_PORT:-50051}
metrics_port=${MATID_METRICS_PORT:-8080}
out=out/demo
mkdir -p "$out"

if [ ! -f "$model_dir/metadata.json" ]; then
  if [ -f model_export/__main__.py ]; then
    echo "demo: no model in $model_dir; training the quick profile (a few minutes)"
    /usr/bin/python3 -m model_export all --quick --out "$model_dir"
  else
    echo "demo: WARNING: no trained model and no training pipeline yet;"
    echo "demo: serving a RANDOM test model: predictions are meaningless."
    model_dir=models/test-random
    /usr/bin/python3 model_export/make_test_model.py --out "$model_dir" >/dev/null
  fi
fi

echo "demo: exporting $images Fashion-MNIST test images to $out/images"
rm -rf "$out/images"
/usr/bin/python3 model_export/fashion_mnist.py --split test --count "$images" --out "$out/images" >/dev/null

server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" || true
  fi
  server_pid=""
}
trap stop_server EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM

build/bin/matid-server --model_dir="$model_dir" --port="$port" \
  --metrics_port="$metrics_port" --host=127.0.0.1 --metrics_host=127.0.0.1 \
  >"$out/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
  grep -q "serving grpc_port" "$out/server.log" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$out/server.log"; exit 1; }
  sleep 0.1
done
sed 's/^/  /' "$out/server.log"

echo "demo: classifying with matid-classify --mode=batch"
status=0
build/bin/matid-classify --server="127.0.0.1:$port" --mode=batch --concurrency=2 \
  --format=csv --output="$out/predictions.csv" "$out/images" || status=$?
build/bin/matid-classify --server="127.0.0.1:$port" --format=table \
  "$out"/images/*/test_0000[0-9].png 2>/dev/null | head -12 || true

# Ground truth is the image's folder; labels map to folders as "/" and " " -> "_".
awk -F, 'NR > 1 {
  n = split($1, parts, "/"); truth = parts[n - 1];
  label = $3; gsub(/[\/ ]/, "_", label);
  total++; if ($2 == "OK" && label == truth) correct++;
} END { if (total) printf "demo: accuracy %.4f (%d of %d test images)\n", correct / total, correct, total }' \
  "$out/predictions.csv"

echo "demo: server metrics (http://127.0.0.1:$metrics_port/metrics):"
curl -fsS "http://127.0.0.1:$metrics_port/metrics" | grep -E \
  '^matid_(requests_total|batch_size_(sum|count)|request_duration_seconds_(sum|count)|inference_duration_seconds_(sum|count)|model_info)' \
  | sed 's/^/  /' || true

stop_server
echo "demo: results in $out/predictions.csv, server log in $out/server.log"
exit "$status"
