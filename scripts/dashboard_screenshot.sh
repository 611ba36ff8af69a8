#!/usr/bin/env bash
# Produces docs/dashboard.png: Prometheus graphing the recording rule
# label:matid_predictions:rate5m while matid-classify sends the
# Fashion-MNIST test images to a local matid-server. Needs Debian's chromium
# (apt-get install chromium); everything runs on loopback and stops at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait; rm -rf "$work"' EXIT
model=${MATID_MODEL_DIR:-models/fashion-mnist}
/usr/bin/python3 -m model_export.fashion_mnist --split test --count 2000 --out "$work/images" >/dev/null
build/bin/matid-server --model_dir="$model" --host=127.0.0.1 --port=50061 --metrics_host=127.0.0.1 \
  --metrics_port=18061 --threads=1 > "$work/server.log" 2>&1 &
cat > "$work/prometheus.yml" <<YAML
global: {scrape_interval: 2s, evaluation_interval: 2s}
rule_files: ["$(pwd)/deploy/prometheus/rules.yml"]
scrape_configs:
  - {job_name: matid-server, static_configs: [{targets: ["127.0.0.1:18061"]}]}
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address=127.0.0.1:19061 > "$work/prometheus.log" 2>&1 &
sleep 3
end=$((SECONDS + ${MATID_SCREENSHOT_LOAD_SECONDS:-90}))
while [ $SECONDS -lt $end ]; do
  build/bin/matid-classify --server=127.0.0.1:50061 --concurrency=2 --format=csv "$work/images" >/dev/null 2>&1 || true
  sleep 1
done
url="http://127.0.0.1:19061/graph?g0.expr=label%3Amatid_predictions%3Arate5m&g0.tab=0&g0.stacked=1&g0.range_input=2m"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$work/chromium" --window-size=1400,900 --virtual-time-budget=15000 \
  --screenshot="$(pwd)/docs/dashboard.png" "$url"
echo "wrote docs/dashboard.png"
