"""DriveLM QA evaluation: metrics by hand, the sample's output.json, and `eval qa` argument handling."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import pytest

from drive_vla.cli import eval_qa
from drive_vla.data.qa_formats import load_qa_file
from drive_vla.eval.qa_metrics import evaluate_drivelm, language_scores, match_f1, predictions_by_id

pytest.importorskip("pycocoevalcap")
SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "drivelm_sample"
needs_sample = pytest.mark.skipif(not (SAMPLE / "output.json").is_file(), reason="DriveLM sample absent")


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    eval_qa.add_parser(parser.add_subparsers(dest="mode"))
    return eval_qa.run(parser.parse_args(["qa", *argv]))


def test_match_f1_and_bleu_rouge_by_hand():
    # two predicted points, one ground-truth point 5 px (L1) from the first: TP 1, FP 1, FN 0 -> F1 2/3
    matched, f1 = match_f1("<c1,CAM_FRONT,10.0,10.0> and <c2,CAM_FRONT,100.0,100.0>", "<c1,CAM_FRONT,12.0,13.0>")
    assert matched == [(12.0, 13.0)] and f1 == pytest.approx(2 / 3, abs=1e-6)
    assert match_f1("at 10.0,10.0", "at 26.0,10.0")[1] == pytest.approx(0.0)  # 16 px is not below 16
    # "a b c d" against "a b x y": 2 of 4 unigrams, same length -> BLEU-1 0.5; LCS 2 -> ROUGE-L 0.5
    scores = language_scores(["a b c d"], ["a b x y"], tokenizer="fallback")
    assert scores["Bleu_1"] == pytest.approx(0.5, abs=1e-6) and scores["ROUGE_L"] == pytest.approx(0.5, abs=1e-6)
    assert scores["tokenizer"] == "fallback"


@needs_sample
def test_sample_output_three_metrics_by_hand(tmp_path, capsys):
    questions = load_qa_file(SAMPLE / "test_eval.json")
    preds = predictions_by_id(json.loads((SAMPLE / "output.json").read_text()))
    result = evaluate_drivelm(questions, preds, tokenizer="fallback").to_dict()
    # by hand, following DriveLM's loop: the first pair of each frame counts, later pairs only when their
    # coordinates were matched by that first answer; the sample's answers name no coordinates, so only
    # coordinate-free questions count
    scored = []
    for token, frame in questions.frames.items():
        for k, p in enumerate(frame.pairs):
            if k == 0 or not re.search(r"\d+\.\d+", p.question):
                scored.append((p, preds[f"{frame.scene_token}_{token}_{k}"]))
    tag0 = [(p, a) for p, a in scored if 0 in p.tags]
    assert result["counts"]["tag0"] == len(tag0) == 9
    assert result["accuracy"] == sum(a == p.answer for p, a in tag0) / len(tag0) == 0.0  # no answer is a letter
    tag3 = [(p, a) for p, a in scored if 3 in p.tags]
    assert result["counts"]["tag3"] == len(tag3) == 4
    assert not any(re.search(r"\d+\.\d+", a) for _, a in tag3)  # no predicted point: F1 0 for each
    assert result["match_f1"] == 0.0
    assert result["language"]["pairs"] == 9 and 0.0 < result["language"]["Bleu_1"] < 1.0
    assert result["final_score"] is None and result["gpt_score"] is None
    assert result["partial_score"] == pytest.approx(0.2 * result["language_score"])  # accuracy and F1 are 0
    # the command prints every metric and writes them
    args = ["--predictions", str(SAMPLE / "output.json"), "--questions", str(SAMPLE / "test_eval.json")]
    assert _run([*args, "--out", str(tmp_path), "--tokenizer", "fallback"]) == 0
    out = capsys.readouterr().out
    for name in ("accuracy", "Bleu_1", "Bleu_4", "ROUGE_L", "CIDEr", "match F1", "GPT score", "final score"):
        assert name in out
    assert "FALLBACK" in out and "not computed" in out
    assert json.loads((tmp_path / "metrics.json").read_text())["final_score"] is None


@needs_sample
@pytest.mark.skipif(shutil.which("java") is None, reason="Java (PTB tokenizer) absent")
def test_sample_output_with_the_ptb_tokenizer():
    questions = load_qa_file(SAMPLE / "test_eval.json")
    preds = predictions_by_id(json.loads((SAMPLE / "output.json").read_text()))
    lang = evaluate_drivelm(questions, preds, tokenizer="ptb").to_dict()["language"]
    assert lang["tokenizer"] == "ptb"
    assert lang["Bleu_1"] == pytest.approx(0.198785, abs=1e-5) and lang["ROUGE_L"] == pytest.approx(0.184217, abs=1e-5)


@needs_sample
def test_eval_qa_errors_exit_2(tmp_path, capsys):
    q = str(SAMPLE / "test_eval.json")
    preds = json.loads((SAMPLE / "output.json").read_text())
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(preds[1:]))
    assert _run(["--predictions", str(path), "--questions", q]) == 2
    assert (
        "no answer for id f0f120e4d4b0441da90ec53b16ee169d_4a0798f849ca477ab18009c3a20b7df2_0"
        in capsys.readouterr().err
    )
    assert _run(["--policy", str(tmp_path), "--questions", q, "--dataroot", str(tmp_path)]) == 2
    assert "--dataroot and --version go together" in capsys.readouterr().err
    assert _run(["--questions", q]) == 2


@needs_sample
def test_eval_qa_answers_frames_given_as_images_alone_with_an_unknown_ego(tmp_path, capsys):
    """--images-root without a dataset: the ego state is unknown, the policy reads its learned "unknown ego"
    input, and every question gets an answer in DriveLM's submission format."""
    import importlib.util

    from drive_vla.config import load_config
    from drive_vla.model.config import ModelConfig
    from drive_vla.policy import DrivingPolicy

    spec = importlib.util.spec_from_file_location("fx", Path(__file__).parents[1] / "model" / "conftest.py")
    fx = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fx)
    cfg = load_config(ModelConfig, fx.TINY_YAML, [*fx.TEST_OVERRIDES, "ego_dropout=0.2", "max_explanation_tokens=4"])
    DrivingPolicy.build(cfg).save_pretrained(tmp_path / "pol")
    full = json.loads((SAMPLE / "test_eval.json").read_text())
    scene = next(iter(full))
    token = next(iter(full[scene]["key_frames"]))
    one = {scene: {**full[scene], "key_frames": {token: full[scene]["key_frames"][token]}}}
    (tmp_path / "q.json").write_text(json.dumps(one))
    args = ["--policy", str(tmp_path / "pol"), "--questions", str(tmp_path / "q.json")]
    assert _run([*args, "--images-root", str(SAMPLE / "nuscenes"), "--out", str(tmp_path / "out")]) == 0
    records = json.loads((tmp_path / "out" / "output.json").read_text())
    pairs = sum(len(v) for v in full[scene]["key_frames"][token]["QA"].values())
    assert len(records) == pairs and records[0]["id"] == f"{scene}_{token}_0"
    assert all(isinstance(r["answer"], str) for r in records)
    assert json.loads((tmp_path / "out" / "submission.json").read_text())["results"] == records
    assert "untrained" not in capsys.readouterr().err  # trained with ego_dropout: no warning
