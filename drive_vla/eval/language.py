"""Language metrics of plans: meta-action accuracy and ROUGE-L F1 of explanations (rouge-score)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _norm(text: str) -> str:
    return " ".join(text.strip().lower().replace(";", ",").split())


def meta_action_accuracy(predicted: Sequence[str | None], labels: Sequence[str | None]) -> dict[str, Any]:
    """Exact-match accuracy of meta-actions ("<speed action>, <direction>") over pairs where both exist.

    Also reports the accuracy of each half (speed action, direction) separately. Matching ignores case
    and extra whitespace.

    Returns:
        {"accuracy", "speed_accuracy", "direction_accuracy", "num_pairs"}; accuracies are None without pairs.
    """
    if len(predicted) != len(labels):
        raise ValueError(f"predicted: got {len(predicted)} entries, expected {len(labels)} like labels")
    pairs = [(_norm(p), _norm(g)) for p, g in zip(predicted, labels) if p and g]
    if not pairs:
        return {"accuracy": None, "speed_accuracy": None, "direction_accuracy": None, "num_pairs": 0}

    def part(text: str, i: int) -> str:
        bits = [b.strip() for b in text.split(",")]
        return bits[i] if len(bits) > i else ""

    return {
        "accuracy": float(np.mean([p == g for p, g in pairs])),
        "speed_accuracy": float(np.mean([part(p, 0) == part(g, 0) for p, g in pairs])),
        "direction_accuracy": float(np.mean([part(p, 1) == part(g, 1) for p, g in pairs])),
        "num_pairs": len(pairs),
    }


def rouge_l_f1(predicted: Sequence[str | None], references: Sequence[str | None]) -> dict[str, Any]:
    """Mean ROUGE-L F1 (rouge-score, Porter stemming) over pairs where both texts are non-empty.

    Returns:
        {"rouge_l_f1": float | None, "num_pairs": int}.
    """
    if len(predicted) != len(references):
        raise ValueError(f"predicted: got {len(predicted)} entries, expected {len(references)} like references")
    pairs = [(p, r) for p, r in zip(predicted, references) if p and p.strip() and r and r.strip()]
    if not pairs:
        return {"rouge_l_f1": None, "num_pairs": 0}
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    scores = [scorer.score(r, p)["rougeL"].fmeasure for p, r in pairs]
    return {"rouge_l_f1": float(np.mean(scores)), "num_pairs": len(pairs)}
