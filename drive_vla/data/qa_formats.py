"""QA files as published: DriveLM-nuScenes v1.1 (train; val with questions only) and nuScenes-QA, parsed strictly.

DriveLM layout (``v1_1_train_nus.json``, the challenge's ``test_eval.json`` and the questions-only val file)::

    {scene_token: {"scene_description": str (optional),
                   "key_frames": {frame_token: {
                       "key_object_infos": {"<c1,CAM_BACK,1088.3,497.5>": {"Category", "Status",
                                            "Visual_description", "2d_bbox"}, ...},
                       "QA": {"perception" | "prediction" | "planning" | "behavior":
                              [{"Q": str, "A": str (absent in questions-only files), "tag": [int],
                                "C", "con_up", "con_down", "cluster", "layer": kept as published}]},
                       "image_paths": {camera: "../nuscenes/samples/CAM_.../....jpg"}}}}}

nuScenes-QA layout (``NuScenes_{train,val}_questions.json``)::

    {"info": {...}, "questions": [{"sample_token": str, "question": str, "answer": str | int,
                                   "template_type": str, "num_hop": int, ...}]}

Every malformed record raises ``QAFileError`` naming the file, the scene and frame token, the kind, the
index and the field; nothing is dropped silently and a half-valid file loads nothing.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drive_vla.types import CAMERA_NAMES

DRIVELM_KINDS = ("perception", "prediction", "planning", "behavior")
DRIVELM_TAGS = (0, 1, 2, 3)  # 0 accuracy, 1 GPT score, 2 language score, 3 match score
# A c-tag names a key object: <c{id},{camera},{x px},{y px}> in the 1600x900 image of that camera.
C_TAG = re.compile(r"<c\d+,(CAM_[A-Z_]+),(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)>")


class QAFileError(ValueError):
    """A QA file is missing or one of its records is malformed (the message names the record)."""


@dataclass(frozen=True)
class QAPair:
    """One question of a frame.

    Attributes:
        kind: DriveLM kind ("perception", ...) or nuScenes-QA template type ("exist", "count", ...).
        index: position within its kind's list (DriveLM) or within the file's question list (nuScenes-QA).
        question: the question text.
        answer: the answer text; None in questions-only files.
        tags: DriveLM evaluation tags (empty where the file has none).
    """

    kind: str
    index: int
    question: str
    answer: str | None
    tags: tuple[int, ...] = ()


@dataclass
class QAFrame:
    """The QA of one keyframe (a nuScenes sample token) with what DriveLM publishes beside it."""

    scene_token: str
    frame_token: str
    pairs: list[QAPair] = field(default_factory=list)
    key_object_infos: dict[str, dict[str, Any]] = field(default_factory=dict)
    image_paths: dict[str, str] = field(default_factory=dict)
    scene_description: str | None = None


@dataclass
class QAFile:
    """A parsed QA file: ``layout`` is "drivelm" or "nuscenes-qa"; frames in file order."""

    path: str
    layout: str
    frames: dict[str, QAFrame]

    @property
    def has_answers(self) -> bool:
        """True when every pair has an answer (False for a questions-only file)."""
        return all(p.answer is not None for f in self.frames.values() for p in f.pairs)

    def pairs_by_kind(self) -> dict[str, int]:
        counts = Counter(p.kind for f in self.frames.values() for p in f.pairs)
        order = [k for k in DRIVELM_KINDS if k in counts] + sorted(k for k in counts if k not in DRIVELM_KINDS)
        return {k: counts[k] for k in order}

    @property
    def num_pairs(self) -> int:
        return sum(len(f.pairs) for f in self.frames.values())

    @property
    def scenes(self) -> list[str]:
        return list(dict.fromkeys(f.scene_token for f in self.frames.values()))


def _where(path: str, scene: str | None = None, frame: str | None = None, kind: str | None = None, index=None) -> str:
    parts = [f"qa_file {path}"]
    if scene is not None:
        parts.append(f"scene {scene}")
    if frame is not None:
        parts.append(f"frame {frame}")
    if kind is not None:
        parts.append(f"kind {kind}")
    if index is not None:
        parts.append(f"index {index}")
    return ", ".join(parts)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise QAFileError(f"duplicate key {k!r}")
        out[k] = v
    return out


def read_json(path: str | os.PathLike) -> Any:
    """JSON of ``path``; QAFileError on a missing file, invalid JSON or a key repeated in one object."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise QAFileError(f"qa_file {p}: does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise QAFileError(f"qa_file {p}: cannot be read ({exc})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except QAFileError as exc:
        raise QAFileError(f"qa_file {p}: {exc} in one JSON object (a repeated token would hide a record)") from None
    except json.JSONDecodeError as exc:
        raise QAFileError(f"qa_file {p}: not valid JSON ({exc})") from None


def _text(value: Any, where: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise QAFileError(f"{where}, field {name}: got {value!r}, expected a non-empty string")
    return value


def _tags(value: Any, where: str) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, int) and t in DRIVELM_TAGS for t in value):
        raise QAFileError(f"{where}, field tag: got {value!r}, expected a list of tags among {list(DRIVELM_TAGS)}")
    return tuple(value)


def _drivelm_pair(raw: Any, where: str, kind: str, index: int) -> QAPair:
    if not isinstance(raw, dict):
        raise QAFileError(f"{where}, field QA: got {type(raw).__name__} {raw!r:.60}, expected {{'Q': str, 'A': str}}")
    question = _text(raw.get("Q"), where, "Q")
    answer = None
    if "A" in raw:
        answer = raw["A"]
        if not isinstance(answer, str):
            raise QAFileError(f"{where}, field A: got {answer!r}, expected a string")
    return QAPair(kind=kind, index=index, question=question, answer=answer, tags=_tags(raw.get("tag"), where))


def _key_objects(raw: Any, where: str) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise QAFileError(f"{where}, field key_object_infos: got {type(raw).__name__}, expected {{c-tag: {{...}}}}")
    for tag, info in raw.items():
        m = C_TAG.fullmatch(tag)
        if m is None or m.group(1) not in CAMERA_NAMES:
            raise QAFileError(
                f"{where}, field key_object_infos: got c-tag {tag!r}, expected <c{{id}},{{camera}},{{x}},{{y}}> "
                f"with a camera among {list(CAMERA_NAMES)}"
            )
        if not isinstance(info, dict):
            raise QAFileError(f"{where}, field key_object_infos[{tag}]: got {info!r}, expected an object")
    return dict(raw)


def _image_paths(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise QAFileError(f"{where}, field image_paths: got {raw!r:.80}, expected {{camera: path}}")
    unknown = sorted(set(raw) - set(CAMERA_NAMES))
    if unknown:
        raise QAFileError(f"{where}, field image_paths: got cameras {unknown}, expected cameras among {CAMERA_NAMES}")
    return dict(raw)


def parse_drivelm(data: Any, path: str) -> QAFile:
    """A DriveLM-layout object -> QAFile; QAFileError naming the first malformed record."""
    if not isinstance(data, dict):
        raise QAFileError(f"{_where(path)}: got {type(data).__name__}, expected {{scene_token: {{'key_frames': ...}}}}")
    frames: dict[str, QAFrame] = {}
    for scene, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("key_frames"), dict):
            raise QAFileError(f"{_where(path, scene)}, field key_frames: missing, expected {{frame_token: {{...}}}}")
        desc = entry.get("scene_description")
        if desc is not None and not isinstance(desc, str):
            raise QAFileError(f"{_where(path, scene)}, field scene_description: got {desc!r}, expected a string")
        for token, frame in entry["key_frames"].items():
            where = _where(path, scene, token)
            if token in frames:
                raise QAFileError(f"{where}: frame token also in scene {frames[token].scene_token}, expected once")
            if not isinstance(frame, dict):
                raise QAFileError(f"{where}: got {type(frame).__name__}, expected {{'QA': ..., 'image_paths': ...}}")
            qa = frame.get("QA")
            if not isinstance(qa, dict):
                raise QAFileError(
                    f"{where}, field QA: got {type(qa).__name__}, expected {{kind: [{{'Q': str, 'A': str}}]}} with "
                    f"kinds among {list(DRIVELM_KINDS)}"
                )
            pairs: list[QAPair] = []
            for kind, items in qa.items():
                if kind not in DRIVELM_KINDS:
                    raise QAFileError(f"{where}, kind {kind}: unknown kind, expected one of {list(DRIVELM_KINDS)}")
                if not isinstance(items, list):
                    raise QAFileError(f"{where}, kind {kind}, field QA: got {type(items).__name__}, expected a list")
                for i, raw in enumerate(items):
                    pairs.append(_drivelm_pair(raw, _where(path, scene, token, kind, i), kind, i))
            frames[token] = QAFrame(
                scene_token=scene,
                frame_token=token,
                pairs=sorted(pairs, key=lambda p: DRIVELM_KINDS.index(p.kind)),  # DriveLM's kind order
                key_object_infos=_key_objects(frame.get("key_object_infos"), where),
                image_paths=_image_paths(frame.get("image_paths"), where),
                scene_description=desc,
            )
    return _check_answers(QAFile(path=path, layout="drivelm", frames=frames))


def parse_nuscenes_qa(data: dict[str, Any], path: str) -> QAFile:
    """A nuScenes-QA-layout object -> QAFile (kind = template_type); QAFileError naming the record."""
    questions = data.get("questions")
    if not isinstance(questions, list):
        raise QAFileError(f"{_where(path)}, field questions: got {type(questions).__name__}, expected a list")
    frames: dict[str, QAFrame] = {}
    for i, q in enumerate(questions):
        if not isinstance(q, dict):
            raise QAFileError(f"{_where(path, index=i)}, field questions: got {q!r:.60}, expected an object")
        token = _text(q.get("sample_token"), _where(path, index=i), "sample_token")
        kind = q.get("template_type", "question")
        where = _where(path, q.get("scene_token"), token, kind, i)
        if not isinstance(kind, str) or not kind:
            raise QAFileError(f"{where}, field template_type: got {kind!r}, expected a string")
        question = _text(q.get("question"), where, "question")
        answer = None
        if "answer" in q:
            answer = q["answer"]
            if isinstance(answer, bool) or not isinstance(answer, (str, int)):
                raise QAFileError(f"{where}, field answer: got {answer!r}, expected a string or an integer")
            answer = str(answer)
        scene = q.get("scene_token") or ""
        frame = frames.setdefault(token, QAFrame(scene_token=scene, frame_token=token))
        frame.pairs.append(QAPair(kind=kind, index=i, question=question, answer=answer))
    return _check_answers(QAFile(path=path, layout="nuscenes-qa", frames=frames))


def _check_answers(qa: QAFile) -> QAFile:
    """Answers everywhere or nowhere (a questions-only file): one missing answer is a malformed record."""
    with_answer = [p.answer is not None for f in qa.frames.values() for p in f.pairs]
    if any(with_answer) and not all(with_answer):
        for f in qa.frames.values():
            for p in f.pairs:
                if p.answer is None:
                    name = "A" if qa.layout == "drivelm" else "answer"
                    raise QAFileError(
                        f"{_where(qa.path, f.scene_token or None, f.frame_token, p.kind, p.index)}, field {name}: "
                        "missing, expected a string (the other pairs of the file have answers)"
                    )
    return qa


def parse_qa(data: Any, path: str) -> QAFile:
    """Detect the layout (nuScenes-QA has a top-level "questions" list) and parse."""
    if isinstance(data, dict) and isinstance(data.get("questions"), list):
        return parse_nuscenes_qa(data, path)
    return parse_drivelm(data, path)


def load_qa_file(path: str | os.PathLike) -> QAFile:
    """Read and validate a DriveLM or nuScenes-QA file.

    Raises:
        QAFileError: the file is missing, not JSON, or a record is malformed (the message names the file,
            scene, frame, kind, index and field of the first bad record).
    """
    return parse_qa(read_json(path), str(path))
