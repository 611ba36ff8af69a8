#!/usr/bin/python3
"""Reads bench/results/run-*.json (written by bench/run.sh), prints the
issue-6 ratios against their targets, writes bench/results/summary.json and,
with a second argument, appends the rows to that Markdown file
(bench/RESULTS.md) with the date and machine.

Two kinds of figures: the sweeps' (best served figure of any configuration
against the best in-process figure of any run, minutes apart), and the
interleaved rounds' (each served figure right after its ceiling; the median
of the rounds), which this drifting VM makes the fairer comparison."""
import datetime
import json
import os
import platform
import statistics
import sys
from typing import Optional


def load(directory: str, kind: str, name: str) -> Optional[dict]:
    path = os.path.join(directory, f"run-{kind}-{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def best_served(run: dict) -> float:
    return max(s["images_per_second"] for s in run["steps"])


def c1_p50(run: dict) -> float:
    return next(s["p50_ms"] for s in run["steps"] if s["concurrency"] == 1)


def runs(directory: str, kind: str, prefix: str) -> dict:
    """Every run-<kind>-<prefix>*.json, by name."""
    found = {}
    for file in sorted(os.listdir(directory)):
        if file.startswith(f"run-{kind}-{prefix}") and file.endswith(".json"):
            name = file[len(f"run-{kind}-"):-len(".json")]
            found[name] = load(directory, kind, name)
    return found


def best_inprocess_cpu(run: dict) -> float:
    best = max(run["batches"], key=lambda b: b["pipeline_images_per_second"])
    return best.get("pipeline_cpu_ms_per_image", 0)


def best_step(run: dict) -> dict:
    return max(run["steps"], key=lambda s: s["images_per_second"])


# Per model: in-process runs of a round (the ceiling is the better one), the
# served run for throughput, the served run for concurrency-1 latency and,
# optionally, a served BatchClassify run.
ROUND_CONFIGS = {
    "fmnist": (("pair-fmnist-t2", "pair-fmnist-t1-p2"), "pair-fmnist-t1-w2-batch16",
               "pair-fmnist-t1-w2-batch16", "pair-fmnist-t1-w2-batch16-batchrpc"),
    "r18-fp32": (("pair-r18-t2", "pair-r18-t1-p2"), "pair-r18-t1-w2-batch8",
                 "pair-r18-t2-w1-batch8", None),
}


def interleaved_rounds(directory: str, model: str) -> list[dict]:
    """Ratio and c=1 gap of each complete round, in order."""
    inproc_names, throughput_name, latency_name, batch_rpc_name = ROUND_CONFIGS[model]
    found = []
    round_number = 1
    while True:
        inproc = [load(directory, "inprocess", f"{n}-r{round_number}") for n in inproc_names]
        throughput = load(directory, "served", f"{throughput_name}-r{round_number}")
        latency = load(directory, "served", f"{latency_name}-r{round_number}")
        if None in inproc or throughput is None or latency is None:
            return found
        ceiling = max(r["best_pipeline_images_per_second"] for r in inproc)
        single = min(r["single_image_p50_ms"] for r in inproc)
        served = best_served(throughput)
        found.append({"served_images_per_second": served,
                      "inprocess_images_per_second": ceiling,
                      "served_over_inprocess": served / ceiling,
                      "c1_p50_ms": c1_p50(latency), "inprocess_single_p50_ms": single,
                      "c1_p50_minus_inprocess_ms": c1_p50(latency) - single})
        batch_rpc = batch_rpc_name and load(directory, "served", f"{batch_rpc_name}-r{round_number}")
        if batch_rpc:
            found[-1]["batchrpc_over_inprocess"] = best_served(batch_rpc) / ceiling
        round_number += 1


def rounds_summary(found: list) -> dict:
    """The rounds and the median of each measure they have."""
    summary = {"rounds": found}
    for key in ("served_over_inprocess", "c1_p50_minus_inprocess_ms", "batchrpc_over_inprocess"):
        values = [r[key] for r in found if key in r]
        if values:
            summary[f"median_{key}"] = statistics.median(values)
    return summary


def describe_rounds(model: str, summary: dict) -> str:
    def listed(key, form):
        return ", ".join(form.format(r[key]) for r in summary["rounds"] if key in r)

    text = (f"{model}, {len(summary['rounds'])} interleaved rounds: served/in-process median "
            f"{summary['median_served_over_inprocess']:.2f} "
            f"(rounds {listed('served_over_inprocess', '{:.2f}')}; target >= 0.90); "
            f"c1 p50 - in-process single median "
            f"{summary['median_c1_p50_minus_inprocess_ms']:+.2f} ms "
            f"(rounds {listed('c1_p50_minus_inprocess_ms', '{:+.2f}')}; target <= +1 ms)")
    if "median_batchrpc_over_inprocess" in summary:
        text += (f"; BatchClassify of 16 served/in-process median "
                 f"{summary['median_batchrpc_over_inprocess']:.2f} "
                 f"(rounds {listed('batchrpc_over_inprocess', '{:.2f}')})")
    return text


def main() -> None:
    directory = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
    summary = {}
    lines = []
    for model, batched, nobatch in (("fmnist", "fmnist-t1-w1-batch8", "fmnist-t1-w1-nobatch"),
                                    ("r18-fp32", "r18-fp32-t2-w1-batch8", "r18-fp32-t2-w1-nobatch")):
        # Unary Classify only; BatchClassify ("batchrpc") is reported apart.
        served = {n: r for n, r in runs(directory, "served", model).items()
                  if "openloop" not in n and "nobatch" not in n and "batchrpc" not in n}
        inproc = runs(directory, "inprocess", model)
        if not served or not inproc:
            continue
        # The ceiling is the best in-process figure of any run (threads, batch, repeat).
        ceiling_name = max(inproc, key=lambda n: inproc[n]["best_pipeline_images_per_second"])
        ceiling = inproc[ceiling_name]["best_pipeline_images_per_second"]
        best_name = max(served, key=lambda n: best_served(served[n]))
        best = best_served(served[best_name])
        single = min(r["single_image_p50_ms"] for r in inproc.values())
        p50 = min(c1_p50(r) for r in served.values())
        step = best_step(served[best_name])
        entry = {"served_best_images_per_second": best, "served_best_config": best_name,
                 "served_best_concurrency": step["concurrency"],
                 "inprocess_best_pipeline_images_per_second": ceiling,
                 "inprocess_best_config": ceiling_name,
                 "served_over_inprocess": best / ceiling,
                 "c1_p50_ms": p50, "inprocess_single_p50_ms": single,
                 "c1_p50_minus_inprocess_ms": p50 - single,
                 "served_server_cpu_ms_per_image": step.get("server_cpu_ms_per_image", 0),
                 "served_client_cpu_ms_per_image": step.get("client_cpu_ms_per_image", 0),
                 "inprocess_cpu_ms_per_image": best_inprocess_cpu(inproc[ceiling_name]),
                 "peak_rss_mib": max(r.get("server_peak_rss_mib", 0) for r in served.values())}
        on_run = served.get(batched)
        off = load(directory, "served", nobatch)
        if on_run and off:
            entry["c1_p50_batching_on_ms"] = c1_p50(on_run)
            entry["c1_p50_batching_off_ms"] = c1_p50(off)
            entry["batching_on_over_off_c1_p50"] = c1_p50(on_run) / c1_p50(off)
            entry["batching_off_best_images_per_second"] = best_served(off)
        summary[model] = entry
        lines.append(f"{model}: served best {best:.1f} img/s ({best_name}, c={step['concurrency']}) "
                     f"vs in-process {ceiling:.1f} ({ceiling_name}) -> {best / ceiling:.2f} "
                     f"(target >= 0.90); c1 p50 {p50:.2f} ms vs in-process {single:.2f} ms -> "
                     f"{p50 - single:+.2f} ms (target <= +1 ms); CPU per image: server "
                     f"{entry['served_server_cpu_ms_per_image']:.3f} ms + load generator "
                     f"{entry['served_client_cpu_ms_per_image']:.3f} ms vs in-process "
                     f"{entry['inprocess_cpu_ms_per_image']:.3f} ms; peak RSS "
                     f"{entry['peak_rss_mib']} MiB")
        batch_rpc = {n: r for n, r in runs(directory, "served", model).items() if "batchrpc" in n}
        if batch_rpc:
            best_rpc_name = max(batch_rpc, key=lambda n: best_served(batch_rpc[n]))
            best_rpc = best_served(batch_rpc[best_rpc_name])
            entry["batchrpc_best_images_per_second"] = best_rpc
            entry["batchrpc_over_inprocess"] = best_rpc / ceiling
            lines.append(f"   BatchClassify (16 images per call, {best_rpc_name}): served best "
                         f"{best_rpc:.1f} img/s -> {best_rpc / ceiling:.2f} of in-process")
        if "c1_p50_batching_on_ms" in entry:
            lines.append(f"   batching on/off ({batched} vs {nobatch}) c1 p50 "
                         f"{entry['c1_p50_batching_on_ms']:.2f}/"
                         f"{entry['c1_p50_batching_off_ms']:.2f} ms -> "
                         f"{entry['batching_on_over_off_c1_p50']:.2f} (target <= 1.05)")
    int8_served = runs(directory, "served", "r18-int8")
    fp32_served = {n: r for n, r in runs(directory, "served", "r18-fp32").items()
                   if "nobatch" not in n}
    int8_inproc = load(directory, "inprocess", "r18-int8-t2")
    fp32_inproc = load(directory, "inprocess", "r18-fp32-t2")
    if int8_served and fp32_served and int8_inproc and fp32_inproc:
        raw = (max(b["forward_images_per_second"] for b in int8_inproc["batches"]) /
               max(b["forward_images_per_second"] for b in fp32_inproc["batches"]))
        best_int8 = max(best_served(r) for r in int8_served.values())
        best_fp32 = max(best_served(r) for r in fp32_served.values())
        served = best_int8 / best_fp32
        summary["r18-int8"] = {"served_int8_over_fp32": served, "raw_forward_int8_over_fp32": raw,
                               "served_int8_best": best_int8, "served_fp32_best": best_fp32}
        lines.append(f"r18 int8 vs fp32: served best {best_int8:.1f} / {best_fp32:.1f} = "
                     f"{served:.2f}x, raw forward {raw:.2f}x (target >= 2.5x)")
    for model in ROUND_CONFIGS:
        found = interleaved_rounds(directory, model)
        if found:
            summary[f"{model}-rounds"] = rounds_summary(found)
            lines.append(describe_rounds(model, summary[f"{model}-rounds"]))
    with open(os.path.join(directory, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print("\n".join(lines))
    if len(sys.argv) > 2:
        with open(sys.argv[2], "a") as f:
            f.write(f"\n### bench/run.sh, {datetime.date.today().isoformat()}, "
                    f"{os.cpu_count()} CPUs, {platform.platform()}\n\n")
            for line in lines:
                f.write(f"- {line.strip()}\n")


if __name__ == "__main__":
    main()
