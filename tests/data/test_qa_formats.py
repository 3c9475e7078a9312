"""QA files as published (DriveLM v1.1, nuScenes-QA): strict parsing, `data qa-stats`, joining to a dataset."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from drive_vla.cli.main import main
from drive_vla.data.drivelm import behavior_meta_action
from drive_vla.data.qa_formats import QAFileError, load_qa_file
from drive_vla.data.reader import NuScenesReader

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "drivelm_sample"
needs_sample = pytest.mark.skipif(not (SAMPLE / "train_sample.json").is_file(), reason="DriveLM sample absent")


def _drivelm(scene: str = "scene-a", frames: tuple[str, ...] = ("frame-1", "frame-2")) -> dict:
    key_frames = {}
    for f in frames:
        key_frames[f] = {
            "key_object_infos": {"<c1,CAM_FRONT,800.0,450.0>": {"Category": "Vehicle", "2d_bbox": [1, 2, 3, 4]}},
            "QA": {
                "perception": [{"Q": "What is ahead?", "A": "A car.", "C": None}, {"Q": "Any light?", "A": "No."}],
                "behavior": [
                    {
                        "Q": "Predict the behavior of the ego vehicle.",
                        "A": "The ego vehicle is going straight. The ego vehicle is not moving.",
                    }
                ],
            },
            "image_paths": {"CAM_FRONT": "../nuscenes/samples/CAM_FRONT/x.jpg"},
        }
    return {scene: {"scene_description": "A road.", "key_frames": key_frames}}


@needs_sample
def test_qa_stats_counts_the_drivelm_sample(capsys):
    assert main(["data", "qa-stats", "--qa-file", str(SAMPLE / "train_sample.json")]) == 0
    out = capsys.readouterr().out
    assert (
        "scenes                 2" in out and "frames                 9" in out and "pairs                  790" in out
    )
    assert "perception           337" in out and "prediction           271" in out
    assert "planning             173" in out and "behavior             9" in out
    qa = load_qa_file(SAMPLE / "train_sample.json")
    frame = next(iter(qa.frames.values()))
    assert "<c1,CAM_BACK,1088.3,497.5>" in frame.key_object_infos and len(frame.image_paths) == 6
    tagged = load_qa_file(SAMPLE / "test_eval.json")
    assert sum(len(p.tags) for f in tagged.frames.values() for p in f.pairs) == 66


def _malformed(kind: str) -> dict:
    data = _drivelm()
    qa = data["scene-a"]["key_frames"]["frame-2"]["QA"]
    if kind == "A missing":
        del qa["perception"][1]["A"]
    elif kind == "A null":
        qa["perception"][1]["A"] = None
    elif kind == "Q null":
        qa["perception"][1]["Q"] = None
    elif kind == "misspelled kind":
        qa["perceptoin"] = qa.pop("perception")
    elif kind == "QA as a list":
        data["scene-a"]["key_frames"]["frame-2"]["QA"] = [qa["perception"][0]]
    elif kind == "pair as a string":
        qa["perception"][1] = "What is ahead? A car."
    elif kind == "duplicate frame token":
        data["scene-b"] = copy.deepcopy(data["scene-a"])
    return data


ROWS = {
    "A missing": r"scene scene-a, frame frame-2, kind perception, index 1, field A: missing",
    "A null": r"scene scene-a, frame frame-2, kind perception, index 1, field A: got None",
    "Q null": r"scene scene-a, frame frame-2, kind perception, index 1, field Q: got None",
    "misspelled kind": r"scene scene-a, frame frame-2, kind perceptoin: unknown kind",
    "QA as a list": r"scene scene-a, frame frame-2, field QA: got list",
    "pair as a string": r"scene scene-a, frame frame-2, kind perception, index 1, field QA: got str",
    "duplicate frame token": r"scene scene-b, frame frame-1: frame token also in scene scene-a",
}


@pytest.mark.parametrize("row", list(ROWS))
def test_every_malformed_record_exits_2_naming_it(row, tmp_path, capsys):
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(_malformed(row)))
    assert main(["data", "qa-stats", "--qa-file", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err
    assert re.search(ROWS[row], err), err


def test_a_repeated_key_in_one_object_is_an_error(tmp_path):
    path = tmp_path / "qa.json"
    body = json.dumps(_drivelm(frames=("frame-1",)))
    path.write_text(body[:-1] + ", " + body[1:])  # the same scene key twice: json would keep the later one
    with pytest.raises(QAFileError, match="duplicate key 'scene-a'"):
        load_qa_file(path)


def test_questions_only_and_nuscenes_qa_layouts(tmp_path, capsys):
    data = _drivelm()
    for frame in data["scene-a"]["key_frames"].values():
        for pairs in frame["QA"].values():
            for p in pairs:
                p.pop("A")
    path = tmp_path / "val_q_only.json"
    path.write_text(json.dumps(data))
    assert main(["data", "qa-stats", "--qa-file", str(path)]) == 0
    assert "questions only" in capsys.readouterr().out
    nqa = {
        "info": {"version": "1.0"},
        "questions": [
            {
                "sample_token": "s1",
                "question": "Are there cars?",
                "answer": "yes",
                "template_type": "exist",
                "num_hop": 0,
            },
            {"sample_token": "s1", "question": "How many cars?", "answer": 2, "template_type": "count", "num_hop": 0},
            {
                "sample_token": "s2",
                "question": "What is moving?",
                "answer": "car",
                "template_type": "object",
                "num_hop": 1,
            },
        ],
    }
    path = tmp_path / "nuscenes_qa.json"
    path.write_text(json.dumps(nqa))
    qa = load_qa_file(path)
    assert qa.layout == "nuscenes-qa" and qa.num_pairs == 3 and len(qa.frames) == 2
    assert qa.frames["s1"].pairs[1].answer == "2" and qa.pairs_by_kind() == {"count": 1, "exist": 1, "object": 1}
    nqa["questions"][2]["answer"] = None
    path.write_text(json.dumps(nqa))
    with pytest.raises(QAFileError, match=r"frame s2, kind object, index 2, field answer: got None"):
        load_qa_file(path)


def test_behavior_answers_map_to_meta_actions():
    assert behavior_meta_action("The ego vehicle is going straight. The ego vehicle is driving fast.") == (
        "keep speed, straight"
    )
    assert behavior_meta_action("The ego vehicle is slightly steering to the left. The ego vehicle is not moving.") == (
        "stop, left"
    )
    assert behavior_meta_action("The ego vehicle is steering to the right. It is decelerating.") == "decelerate, right"
    assert behavior_meta_action("Nothing to say.") is None


def _scene_of(root: Path, version: str) -> dict[str, str]:
    return {s["token"]: s["scene_token"] for s in json.loads((root / version / "sample.json").read_text())}


def test_joined_to_a_dataset_half_valid_loads_nothing(synthetic_dataset, tmp_path, capsys):
    root, version, tokens = synthetic_dataset
    scene = _scene_of(root, version)[tokens[1][2]]
    data = _drivelm(scene, (tokens[1][2], tokens[1][3]))
    data["other-scene"] = _drivelm("other-scene", ("not-in-this-version",))["other-scene"]
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(data))
    reader = NuScenesReader(root, version, qa_file=path)
    sample = reader.get(tokens[1][2])
    assert len(sample.targets.qa) == 3 and sample.targets.meta_action == "stop, straight"
    assert sample.targets.explanation.startswith("The ego vehicle is going straight.")
    args = ["data", "qa-stats", "--qa-file", str(path), "--dataroot", str(root), "--version", version]
    assert main(args) == 0
    assert "1 of 3 frames not in" in capsys.readouterr().out
    # a mistyped frame token of a scene that is in the dataset, and a half-valid file: nothing loads
    data[scene]["key_frames"]["typo-token"] = data[scene]["key_frames"].pop(tokens[1][3])
    path.write_text(json.dumps(data))
    assert main(args) == 2
    assert f"scene {scene}, frame typo-token: frame token is not a sample" in capsys.readouterr().err
    with pytest.raises(ValueError, match="typo-token"):
        NuScenesReader(root, version, qa_file=path)
    bad = _drivelm(scene, (tokens[1][2], tokens[1][3]))
    bad[scene]["key_frames"][tokens[1][3]]["QA"]["perception"][0]["Q"] = None
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=f"frame {tokens[1][3]}, kind perception, index 0, field Q"):
        NuScenesReader(root, version, qa_file=path)
