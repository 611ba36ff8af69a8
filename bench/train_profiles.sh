#!/usr/bin/env bash
# Benchmark (not a test): trains the quick and/or full profile on
# Fashion-MNIST, times each run, serves the fp32 model and checks accuracy
# through matid-server, and prints + writes JSON (bench/results/train-*.json).
#
#   bash bench/train_profiles.sh [quick] [full]     (default: quick)
#
# Targets (issue 3): quick >= 0.88 test accuracy in <= 5 min; full >= 0.93 in
# <= 45 min; int8 within 0.5 points of fp32; served accuracy == offline.
# Run it on an otherwise idle machine: two trainings at once on 2 cores
# slow each other down several-fold (oversubscribed threads).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh >/dev/null
mkdir -p bench/results
profiles=("$@")
[ ${#profiles[@]} -gt 0 ] || profiles=(quick)

for profile in "${profiles[@]}"; do
  work=out/bench-train-$profile
  model=out/bench-model-$profile
  rm -rf "$work" "$model"
  flag=""
  [ "$profile" = quick ] && flag=--quick
  start=$(date +%s)
  /usr/bin/python3 -m model_export all $flag --work "$work" --out "$model" | tee "$work.log"
  seconds=$(( $(date +%s) - start ))

  build/bin/matid-server --model_dir="$model" --host=127.0.0.1 --port=0 --metrics_port=-1 \
    > "$work.server.log" 2>&1 &
  server=$!
  for _ in $(seq 1 300); do grep -q "serving grpc_port" "$work.server.log" && break; sleep 0.1; done
  port=$(sed -n 's/.*serving grpc_port=\([0-9]*\).*/\1/p' "$work.server.log")
  build/bin/matid-classify --server=127.0.0.1:"$port" --mode=batch --top_k=10 --format=jsonl \
    --output="$work/served.jsonl" "$work/data/images/test"
  kill -TERM "$server"; wait "$server" || true
  /usr/bin/python3 -m model_export evaluate --work "$work" --out "$model" \
    --predictions "$work/served.jsonl" | tee -a "$work.log"

  /usr/bin/python3 - "$profile" "$seconds" "$work" "$model" <<'PY'
import json, platform, os, sys, datetime
profile, seconds, work, model = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
meta = json.load(open(os.path.join(model, "metadata.json")))
served = json.load(open(os.path.join(work, "evaluation", "served", "metrics.json")))
trained = json.load(open(os.path.join(work, "checkpoints", "train_result.json")))
m = meta["metrics"]
result = {
    "profile": profile, "date": datetime.date.today().isoformat(),
    "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.platform()}",
    "wall_seconds": seconds, "epochs_run": trained["epochs_run"], "stop_reason": trained["stop_reason"],
    "test_accuracy_fp32": m["accuracy"], "test_accuracy_int8": m.get("int8_accuracy"),
    "int8_top1_agreement": m.get("int8_top1_agreement_with_fp32"),
    "macro_auc_roc": m["macro_auc_roc"], "served_accuracy": served["accuracy"],
    "served_agrees_with_offline": served["agrees_with_offline_model"],
}
path = f"bench/results/train-{profile}.json"
json.dump(result, open(path, "w"), indent=1)
print(json.dumps(result, indent=1))
print(f"wrote {path}")
PY
done
