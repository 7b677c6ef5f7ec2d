"""Per-label metrics, defined exactly as `tusk eval` defines them (pipeline/src/eval.rs)."""

import numpy as np


def label_metrics(scores: np.ndarray, y: np.ndarray, threshold: float) -> dict:
    """Confusion counts at `threshold` (score >= threshold is flagged), precision, recall,
    false-positive rate and average precision (step-wise: sum over positives, ranked by score
    descending, of the precision at each positive; ties broken by order, no interpolation)."""
    scores = np.asarray(scores, np.float64)
    y = np.asarray(y) > 0.5
    flagged = scores >= np.float32(threshold)
    tp = int((flagged & y).sum())
    fp = int((flagged & ~y).sum())
    fn = int((~flagged & y).sum())
    tn = int((~flagged & ~y).sum())
    order = np.argsort(-scores, kind="stable")
    hits = y[order]
    ranks = np.arange(1, len(hits) + 1)
    ap = float((np.cumsum(hits)[hits] / ranks[hits]).sum() / hits.sum()) if hits.sum() else None
    return {
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "fpr": fp / (fp + tn) if fp + tn else None,
        "ap": ap,
    }
