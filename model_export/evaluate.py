"""Evaluation on the test set: confusion matrix, per-class precision /
recall / F1, accuracy, one-vs-rest AUC-ROC per class and macro average,
PNG plots, report.md and metrics.json.

Sources of predictions: the exported model itself (model.pt / model_int8.pt,
run here with the server's preprocessing), or a predictions file written by
`matid-classify --format=jsonl --top_k=<all labels>` against a running
server (the reference's batch-inference step). With both, it reports whether
they agree.
"""
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from .dataset import Sample
from .metrics import classification_report, roc_curve
from .train import evaluate_logits

SCORE_TOLERANCE = 1e-3  # server vs offline probabilities considered equal


def model_probabilities(model_path: str, images: np.ndarray, mean: List[float],
                        std: List[float], qengine: str = "onednn") -> np.ndarray:
    if "int8" in os.path.basename(model_path):
        torch.backends.quantized.engine = qengine
    model = torch.jit.load(model_path)
    logits = evaluate_logits(model, images, mean, std)
    return torch.softmax(logits, dim=1).numpy()


def predictions_file_probabilities(path: str, samples: Sequence[Sample], data_dir: str,
                                   labels: List[str]) -> np.ndarray:
    """Probabilities per test sample from matid-classify JSON lines, matched by
    path. Labels missing from an image's top-k get 0."""
    index = {label: i for i, label in enumerate(labels)}
    by_path: Dict[str, np.ndarray] = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            record = json.loads(line)
            if record.get("status") != "OK":
                raise ValueError(f"{path}:{number}: {record.get('path')} failed on the server: "
                                 f"{record.get('status')} {record.get('error', '')}")
            row = np.zeros(len(labels))
            for entry in record["top_k"]:
                if entry["label"] not in index:
                    raise ValueError(f"{path}:{number}: unknown label {entry['label']!r}")
                row[index[entry["label"]]] = entry["score"]
            by_path[os.path.normpath(os.path.abspath(record["path"]))] = row
    rows = []
    for sample in samples:
        key = os.path.normpath(os.path.abspath(os.path.join(data_dir, sample.path)))
        if key not in by_path:
            raise ValueError(f"{path}: no prediction for test image {sample.path}")
        rows.append(by_path[key])
    return np.stack(rows)


def plot_confusion_matrix(matrix: np.ndarray, labels: List[str], path: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(labels), 0.8 + 0.6 * len(labels)))
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (row, col), count in np.ndenumerate(matrix):
        ax.text(col, row, str(count), ha="center", va="center", fontsize=7,
                color="white" if normalised[row, col] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_roc_curves(truth: np.ndarray, probabilities: np.ndarray, labels: List[str],
                    aucs: List[float], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 6))
    for c, label in enumerate(labels):
        if np.isnan(aucs[c]):
            continue
        fpr, tpr = roc_curve(truth == c, probabilities[:, c])
        ax.plot(fpr, tpr, label=f"{label} (AUC {aucs[c]:.3f})", linewidth=1)
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.7)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC, one class vs rest")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out_dir: str, truth: np.ndarray, probabilities: np.ndarray, labels: List[str],
                 source: str, extra: Optional[Dict] = None) -> Dict:
    """metrics.json, report.md, confusion_matrix.png, roc_curves.png in out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    report = classification_report(truth, probabilities, labels)
    report["source"] = source
    report.update(extra or {})
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(report, f, indent=1)
    matrix = np.array(report["confusion_matrix"])
    plot_confusion_matrix(matrix, labels, os.path.join(out_dir, "confusion_matrix.png"),
                          f"Confusion matrix (accuracy {report['accuracy']:.4f})")
    aucs = [report["per_class"][label]["auc_roc"] for label in labels]
    plot_roc_curves(truth, probabilities, labels, aucs, os.path.join(out_dir, "roc_curves.png"))

    lines = ["# Evaluation report", "", f"Source: {source}", "",
             f"- test images: {report['samples']}",
             f"- accuracy: **{report['accuracy']:.4f}**",
             f"- macro precision / recall / F1: {report['macro_precision']:.4f} / "
             f"{report['macro_recall']:.4f} / {report['macro_f1']:.4f}",
             f"- macro AUC-ROC (one vs rest): {report['macro_auc_roc']:.4f}"]
    for key, value in (extra or {}).items():
        lines.append(f"- {key}: {value}")
    lines += ["", "| class | precision | recall | F1 | AUC-ROC | support |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for label in labels:
        c = report["per_class"][label]
        lines.append(f"| {label} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | "
                     f"{c['auc_roc']:.4f} | {c['support']} |")
    lines += ["", "Confusion matrix (rows: true, columns: predicted):", "",
              "| true \\ predicted | " + " | ".join(labels) + " |",
              "| --- |" + " ---: |" * len(labels)]
    for label, row in zip(labels, report["confusion_matrix"]):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    lines += ["", "![confusion matrix](confusion_matrix.png)", "", "![ROC curves](roc_curves.png)", ""]
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write("\n".join(lines))
    return report


def agreement(a: np.ndarray, b: np.ndarray) -> Dict:
    """How far two sets of probabilities for the same images agree."""
    return {"top1_agreement": float((a.argmax(1) == b.argmax(1)).mean()),
            "max_abs_score_difference": float(np.abs(a - b).max()) if a.size else 0.0}
