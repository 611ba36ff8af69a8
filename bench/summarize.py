#!/usr/bin/python3
"""Reads bench/results/run-*.json (written by bench/run.sh), prints the
issue-6 ratios against their targets, writes bench/results/summary.json and,
with a second argument, appends the rows to that Markdown file
(bench/RESULTS.md) with the date and machine."""
import datetime
import json
import os
import platform
import sys


def load(directory: str, kind: str, name: str):
    path = os.path.join(directory, f"run-{kind}-{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def best_served(run) -> float:
    return max(s["images_per_second"] for s in run["steps"])


def c1_p50(run) -> float:
    return next(s["p50_ms"] for s in run["steps"] if s["concurrency"] == 1)


def main() -> None:
    directory = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
    summary = {}
    lines = []
    for model, served_names, inproc_names, nobatch in (
            ("fmnist", ["fmnist-t1-batch8", "fmnist-t2-batch8"], ["fmnist-t1", "fmnist-t2"],
             "fmnist-t1-nobatch"),
            ("r18-fp32", ["r18-fp32-t2-batch8", "r18-fp32-t1-batch8"], ["r18-fp32-t2", "r18-fp32-t1"],
             "r18-fp32-t2-nobatch")):
        served = {n: load(directory, "served", n) for n in served_names}
        inproc = {n: load(directory, "inprocess", n) for n in inproc_names}
        if not all(served.values()) or not all(inproc.values()):
            continue
        ceiling = max(r["best_pipeline_images_per_second"] for r in inproc.values())
        best_name = max(served, key=lambda n: best_served(served[n]))
        best = best_served(served[best_name])
        single = min(r["single_image_p50_ms"] for r in inproc.values())
        p50 = min(c1_p50(r) for r in served.values())
        entry = {"served_best_images_per_second": best, "served_best_config": best_name,
                 "inprocess_best_pipeline_images_per_second": ceiling,
                 "served_over_inprocess": best / ceiling,
                 "c1_p50_ms": p50, "inprocess_single_p50_ms": single,
                 "c1_p50_minus_inprocess_ms": p50 - single,
                 "peak_rss_mib": max(r.get("server_peak_rss_mib", 0) for r in served.values())}
        off = load(directory, "served", nobatch)
        if off:
            on_run = served[served_names[0]]
            entry["c1_p50_batching_on_ms"] = c1_p50(on_run)
            entry["c1_p50_batching_off_ms"] = c1_p50(off)
            entry["batching_on_over_off_c1_p50"] = c1_p50(on_run) / c1_p50(off)
            entry["batching_off_best_images_per_second"] = best_served(off)
        summary[model] = entry
        lines.append(f"{model}: served best {best:.1f} img/s ({best_name}) vs in-process "
                     f"{ceiling:.1f} -> {best / ceiling:.2f} (target >= 0.90); "
                     f"c1 p50 {p50:.2f} ms vs in-process {single:.2f} ms -> +{p50 - single:.2f} ms "
                     f"(target <= +1 ms); peak RSS {entry['peak_rss_mib']} MiB")
        if off:
            lines.append(f"   batching on/off c1 p50 {entry['c1_p50_batching_on_ms']:.2f}/"
                         f"{entry['c1_p50_batching_off_ms']:.2f} ms -> "
                         f"{entry['batching_on_over_off_c1_p50']:.2f} (target <= 1.05)")
    int8_served = load(directory, "served", "r18-int8-t2-batch8")
    fp32_served = load(directory, "served", "r18-fp32-t2-batch8")
    int8_inproc = load(directory, "inprocess", "r18-int8-t2")
    fp32_inproc = load(directory, "inprocess", "r18-fp32-t2")
    if int8_served and fp32_served and int8_inproc and fp32_inproc:
        raw = (max(b["forward_images_per_second"] for b in int8_inproc["batches"]) /
               max(b["forward_images_per_second"] for b in fp32_inproc["batches"]))
        served = best_served(int8_served) / best_served(fp32_served)
        summary["r18-int8"] = {"served_int8_over_fp32": served, "raw_forward_int8_over_fp32": raw}
        lines.append(f"r18 int8 vs fp32: served {served:.2f}x, raw forward {raw:.2f}x (target >= 2.5x)")
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
