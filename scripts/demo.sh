#!/usr/bin/env bash
# The run command: installs dependencies, builds, trains the quick model if
# none exists, then runs the edge box demo (scripts/edge_demo.py): a conveyor
# video -> matid-camera -> matid-server -> local MQTT -> matid-bridge -> a
# TLS broker standing in for AWS IoT Core, with Prometheus watching; live
# progress, a summary, and everything stopped at the end (Ctrl-C too).
#
# Environment: MATID_MODEL_DIR (default models/fashion-mnist),
# MATID_DEMO_FRAMES (default 600 parts, 30 s at 20 fps). Arguments go to
# scripts/edge_demo.py: `bash scripts/demo.sh --keep_running` keeps the box
# running after the summary, so its URLs answer, until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/build.sh

model_dir=${MATID_MODEL_DIR:-models/fashion-mnist}

if [ ! -f "$model_dir/metadata.json" ]; then
  echo "demo: no model in $model_dir; training the quick profile (a few minutes)"
  /usr/bin/python3 -m model_export all --quick --out "$model_dir"
fi

exec /usr/bin/python3 -m scripts.edge_demo --model_dir "$model_dir" "$@"
