"""Classification metrics in plain NumPy (checked against scikit-learn in
tests): confusion matrix, per-class precision/recall/F1, accuracy and
one-vs-rest ROC / AUC."""
from typing import Dict, List, Tuple

import numpy as np


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted ones."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def per_class_scores(matrix: np.ndarray) -> Dict[str, np.ndarray]:
    """precision, recall, f1 and support per class (0 where undefined, as sklearn)."""
    true_positive = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    actual = matrix.sum(axis=1).astype(np.float64)
    precision = _safe_divide(true_positive, predicted)
    recall = _safe_divide(true_positive, actual)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual.astype(np.int64)}


def roc_curve(positive: np.ndarray, scores: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    order = np.argsort(-scores, kind="mergesort")
    scores, positive = scores[order], positive[order].astype(np.float64)
    distinct = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tps = np.cumsum(positive)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / max(tps[-1], 1e-12)]
    fpr = np.r_[0.0, fps / max(fps[-1], 1e-12)]
    return fpr, tpr


def auc_roc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a positive outscores a
    negative, ties counting half (Mann-Whitney). NaN with one class only."""
    positive = positive.astype(bool)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    boundaries = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1, len(scores)]
    for start, end in zip(boundaries[:-1], boundaries[1:]):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def classification_report(truth: np.ndarray, probabilities: np.ndarray,
                          labels: List[str]) -> Dict:
    """Everything evaluate writes to metrics.json."""
    classes = len(labels)
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(truth, predicted, classes)
    scores = per_class_scores(matrix)
    aucs = [auc_roc(truth == c, probabilities[:, c]) for c in range(classes)]
    defined = [a for a in aucs if not np.isnan(a)]
    return {
        "samples": int(len(truth)),
        "accuracy": float((predicted == truth).mean()) if len(truth) else float("nan"),
        "macro_precision": float(scores["precision"].mean()),
        "macro_recall": float(scores["recall"].mean()),
        "macro_f1": float(scores["f1"].mean()),
        "macro_auc_roc": float(np.mean(defined)) if defined else float("nan"),
        "per_class": {
            label: {"precision": float(scores["precision"][c]), "recall": float(scores["recall"][c]),
                    "f1": float(scores["f1"][c]), "support": int(scores["support"][c]),
                    "auc_roc": aucs[c]}
            for c, label in enumerate(labels)},
        "confusion_matrix": matrix.tolist(),
    }
