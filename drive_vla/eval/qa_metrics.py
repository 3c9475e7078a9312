"""DriveLM's QA evaluation (challenge/evaluation.py of OpenDriveLab/DriveLM), reproduced offline.

What DriveLM's script does, and this module with it:

- Questions come from the evaluation file (DriveLM layout with a ``tag`` list per pair); the prediction of
  pair ``i`` of a frame (kinds in the order perception, prediction, planning, behavior) has the id
  ``<scene>_<frame>_<i>``.
- Per frame, the first pair always counts, and its answer fixes the frame's "graph": the ground-truth
  coordinates it matched (see ``match_f1``). Every later pair counts only if each coordinate pair in its
  question is one of them.
- Tag 0: exact string match (multiple-choice answers are letters). Tag 1: GPT-judged. Tag 2: BLEU-1..4,
  ROUGE-L and CIDEr over all tag-2 pairs as one corpus, after the PTB tokenizer (COCO caption code).
  Tag 3: match F1 x 100, coordinates ``\\d+\\.\\d+`` read as (x, y) pairs, each prediction matched
  greedily to the nearest unused ground-truth point by L1 distance, a hit below 16 px; DriveLM's match
  score averages that with a GPT score.
- Final score = 0.4 GPT/100 + 0.2 language + 0.2 match/100 + 0.2 accuracy, with language =
  (BLEU-1 + ... + BLEU-4)/12 + ROUGE-L/3 + CIDEr/30.

The GPT-judged parts (tag 1, and half of the match score) need an online model: they are reported as
not computed (None), and the partial score covers only the 0.5 of the weight computed here.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drive_vla.data.qa_formats import QAFile

MATCH_RADIUS_PX = 16.0  # L1 distance below which a predicted point hits a ground-truth point
WEIGHTS = {"gpt": 0.4, "language": 0.2, "match": 0.2, "accuracy": 0.2}
_NUMBER = re.compile(r"\d+\.\d+")
# the punctuation tokens the COCO caption tokenizer drops after PTB tokenization
_PTB_PUNCTUATION = {
    "''",
    "'",
    "``",
    "`",
    "-LRB-",
    "-RRB-",
    "-LCB-",
    "-RCB-",
    ".",
    "?",
    "!",
    ",",
    ":",
    "-",
    "--",
    "...",
    ";",
}


def _points(text: str, drop_odd: bool) -> np.ndarray:
    nums = [float(x) for x in _NUMBER.findall(text)]
    if drop_odd and len(nums) % 2:
        nums = nums[:-1]
    return np.asarray(nums, dtype=np.float64).reshape(-1, 2)


def match_f1(answer: str, gt: str, radius_px: float = MATCH_RADIUS_PX) -> tuple[list[tuple[float, float]], float]:
    """(matched ground-truth points, F1) of the coordinates in ``answer`` against those in ``gt``.

    Each predicted point, in order, takes the nearest ground-truth point still unused (L1); a distance
    below ``radius_px`` is a true positive and uses that point up, otherwise a false positive. F1 keeps
    DriveLM's 1e-8 terms, so no points at all give 0.
    """
    pred = _points(answer, drop_odd=True)
    gts = _points(gt, drop_odd=False)
    n_gt = len(gts)
    matched: list[tuple[float, float]] = []
    tp = fp = 0
    for p in pred:
        if len(gts):
            d = np.abs(gts - p).sum(axis=1)
            j = int(np.argmin(d))
            if d[j] < radius_px:
                tp += 1
                matched.append((float(gts[j, 0]), float(gts[j, 1])))
                gts = np.delete(gts, j, axis=0)
                continue
        fp += 1
    fn = n_gt - tp
    precision = tp / (tp + fp + 1e-8)
    recall = tp / (tp + fn + 1e-8)
    return matched, 2 * precision * recall / (precision + recall + 1e-8)


def question_in_graph(question: str, graph: Sequence[tuple[float, float]]) -> bool:
    """True when every coordinate pair in ``question`` is one of the frame's matched points."""
    nums = [float(x) for x in _NUMBER.findall(question)]
    if len(nums) % 2:
        raise ValueError(f"question: got {len(nums)} coordinates in {question!r:.80}, expected (x, y) pairs")
    points = {(float(a), float(b)) for a, b in graph}
    return all((nums[k], nums[k + 1]) in points for k in range(0, len(nums), 2))


def fallback_tokenize(text: str) -> str:
    """Lower-case, split off punctuation and drop it: an approximation of the PTB tokenizer (no Java)."""
    spaced = re.sub(r"([.,!?;:()\[\]{}\"`]|'s\b|'|--)", r" \1 ", text.lower().replace("\n", " "))
    return " ".join(t for t in spaced.split() if t not in _PTB_PUNCTUATION and t not in '()[]{}"')


def tokenizer_name() -> str:
    """ "ptb" when Java runs the COCO caption PTB tokenizer, else "fallback"."""
    return "ptb" if shutil.which("java") else "fallback"


def language_scores(answers: Sequence[str], gts: Sequence[str], tokenizer: str | None = None) -> dict[str, Any]:
    """BLEU-1..4, ROUGE-L and CIDEr of ``answers`` against one reference each, as one corpus (pycocoevalcap).

    Returns the scores and ``tokenizer``: "ptb" (Stanford PTB tokenizer, needs Java: what DriveLM uses)
    or "fallback" (not the PTB tokenizer, so the numbers are approximate).
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    tokenizer = tokenizer or tokenizer_name()
    if not answers:
        return {"Bleu_1": None, "Bleu_2": None, "Bleu_3": None, "Bleu_4": None, "ROUGE_L": None, "CIDEr": None,
                "tokenizer": tokenizer, "pairs": 0}  # fmt: skip
    if tokenizer == "ptb":
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        tok = PTBTokenizer()
        res = tok.tokenize({i: [{"caption": a}] for i, a in enumerate(answers)})
        ref = tok.tokenize({i: [{"caption": g}] for i, g in enumerate(gts)})
    else:
        res = {i: [fallback_tokenize(a)] for i, a in enumerate(answers)}
        ref = {i: [fallback_tokenize(g)] for i, g in enumerate(gts)}
    out: dict[str, Any] = {}
    with contextlib.redirect_stdout(io.StringIO()):  # the scorers print progress
        bleu, _ = Bleu(4).compute_score(ref, res)
        out.update({f"Bleu_{k + 1}": float(b) for k, b in enumerate(bleu)})
        out["ROUGE_L"] = float(Rouge().compute_score(ref, res)[0])
        out["CIDEr"] = float(Cider().compute_score(ref, res)[0])
    out["tokenizer"] = tokenizer
    out["pairs"] = len(answers)
    return out


def predictions_by_id(data: Any, where: str = "predictions") -> dict[str, str]:
    """id -> answer of a DriveLM prediction file: a list of {id, question, gt_answer, answer}, or the
    submission form {"results": [...]}; ValueError naming the record otherwise."""
    if isinstance(data, Mapping) and "results" in data:
        data = data["results"]
    if not isinstance(data, list):
        raise ValueError(f"{where}: got {type(data).__name__}, expected a list of {{'id', 'answer'}} records")
    out: dict[str, str] = {}
    for i, rec in enumerate(data):
        if not isinstance(rec, Mapping) or not isinstance(rec.get("id"), str) or not isinstance(rec.get("answer"), str):
            raise ValueError(f"{where}[{i}]: got {rec!r:.80}, expected {{'id': str, 'answer': str, ...}}")
        if rec["id"] in out:
            raise ValueError(f"{where}[{i}]: id {rec['id']} appears twice, expected one answer per question")
        out[rec["id"]] = rec["answer"]
    return out


@dataclass
class QAEvaluation:
    """What ``evaluate_drivelm`` counted and scored (None = not computed)."""

    accuracy: float | None
    language: dict[str, Any]
    match_f1: float | None  # mean F1 x 100 over tag-3 pairs
    counts: dict[str, int] = field(default_factory=dict)

    def language_score(self) -> float | None:
        lang = self.language
        if lang.get("Bleu_1") is None:
            return None
        bleu = sum(lang[f"Bleu_{k}"] for k in range(1, 5))
        return bleu / 4.0 / 3.0 + lang["ROUGE_L"] / 3.0 + lang["CIDEr"] / 10.0 / 3.0

    def to_dict(self) -> dict[str, Any]:
        lang_score = self.language_score()
        parts = {
            "accuracy": self.accuracy,
            "language": lang_score,
            "match_f1_half": None if self.match_f1 is None else self.match_f1 / 2.0 / 100.0,
        }
        computed = all(v is not None for v in parts.values())
        partial = (
            WEIGHTS["accuracy"] * parts["accuracy"]
            + WEIGHTS["language"] * parts["language"]
            + WEIGHTS["match"] * parts["match_f1_half"]
            if computed
            else None
        )
        return {
            "accuracy": self.accuracy,
            "language": dict(self.language),
            "language_score": lang_score,
            "match_f1": self.match_f1,
            "match_score": None,
            "gpt_score": None,
            "final_score": None,
            "partial_score": partial,
            "partial_score_weight": WEIGHTS["accuracy"] + WEIGHTS["language"] + WEIGHTS["match"] / 2.0,
            "not_computed": [
                "gpt_score (tag 1, GPT-judged, weight 0.4)",
                "match_score's GPT half (tag 3, weight 0.1)",
                "final_score (needs both)",
            ],
            "counts": dict(self.counts),
        }


def evaluate_drivelm(questions: QAFile, predictions: Mapping[str, str], tokenizer: str | None = None) -> QAEvaluation:
    """Score ``predictions`` (id -> answer) on the tagged ``questions`` exactly as DriveLM's evaluation.py.

    Raises:
        ValueError: a question has no prediction (naming its id), or the file has no tags.
    """
    acc, lang_a, lang_g, f1s = [], [], [], []
    counts = {"questions": 0, "scored": 0, "skipped_by_graph": 0, "tag0": 0, "tag1": 0, "tag2": 0, "tag3": 0}
    for token, frame in questions.frames.items():
        graph: list[tuple[float, float]] = []
        for i, pair in enumerate(frame.pairs):
            qid = f"{frame.scene_token}_{token}_{i}"
            counts["questions"] += 1
            if qid not in predictions:
                raise ValueError(
                    f"predictions: no answer for id {qid} ({pair.kind} {pair.index}: {pair.question!r:.60})"
                )
            if pair.answer is None:
                raise ValueError(f"questions: id {qid} has no ground-truth answer, expected an evaluation file")
            if not pair.tags:
                raise ValueError(f"questions: id {qid} has no tag, expected DriveLM's evaluation file (tag 0-3)")
            answer, gt = predictions[qid], pair.answer
            if i == 0:
                graph = match_f1(answer, gt)[0]
            elif not question_in_graph(pair.question, graph):
                counts["skipped_by_graph"] += 1
                continue
            counts["scored"] += 1
            for t in pair.tags:
                counts[f"tag{t}"] += 1
            if 0 in pair.tags:
                acc.append(1.0 if answer == gt else 0.0)
            if 2 in pair.tags:
                lang_a.append(answer)
                lang_g.append(gt)
            if 3 in pair.tags:
                f1s.append(match_f1(answer, gt)[1] * 100.0)
    return QAEvaluation(
        accuracy=float(np.mean(acc)) if acc else None,
        language=language_scores(lang_a, lang_g, tokenizer),
        match_f1=float(np.mean(f1s)) if f1s else None,
        counts=counts,
    )


def format_qa_report(result: dict[str, Any]) -> str:
    """A Markdown table of a ``QAEvaluation.to_dict()``."""

    def num(v: Any, scale: float = 1.0) -> str:
        return "not computed" if v is None else f"{v * scale:.4f}"

    lang = result["language"]
    c = result["counts"]
    tok = lang.get("tokenizer")
    rows = [
        ("tag 0 accuracy (exact match)", num(result["accuracy"]), f"{c['tag0']} pairs"),
        *((f"tag 2 {k}", num(lang.get(k)), f"{lang.get('pairs', 0)} pairs") for k in
          ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr")),
        ("tag 2 language score", num(result["language_score"]), "BLEU/12 + ROUGE-L/3 + CIDEr/30"),
        ("tag 3 match F1 x 100", num(result["match_f1"]), f"{c['tag3']} pairs, 16 px L1"),
        ("tag 1 GPT score", "not computed", f"{c['tag1']} pairs; needs a GPT judge"),
        ("match score (F1 and GPT halves)", "not computed", "GPT half missing"),
        ("final score", "not computed", "0.4 GPT + 0.2 language + 0.2 match + 0.2 accuracy"),
        (f"partial score ({result['partial_score_weight']:.1f} of 1.0 weight)", num(result["partial_score"]),
         "0.2 accuracy + 0.2 language + 0.1 match F1; not the final score"),
    ]  # fmt: skip
    lines = ["| metric | value | note |", "| --- | --- | --- |"] + [f"| {a} | {b} | {n} |" for a, b, n in rows]
    lines.append("")
    lines.append(
        f"{c['questions']} questions, {c['scored']} scored, {c['skipped_by_graph']} skipped by DriveLM's graph "
        "rule (a later question whose objects the frame's first answer did not match)."
    )
    if tok == "fallback":
        lines.append("Tokenizer: FALLBACK (Java not used): not the PTB tokenizer, language metrics are approximate.")
    else:
        lines.append("Tokenizer: PTB (Stanford CoreNLP via Java), as DriveLM's COCO caption code.")
    return "\n".join(lines)
