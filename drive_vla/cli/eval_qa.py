"""`drive-vla eval qa`: score DriveLM predictions as DriveLM does, or answer DriveLM questions with a policy.

Score:   drive-vla eval qa --predictions output.json --questions test_eval.json --out DIR
Answer:  drive-vla eval qa --policy POL --questions Q --dataroot D --version V --out DIR
         (writes DIR/output.json, the list DriveLM's evaluation.py reads, and DIR/submission.json, the
         upload form with the team fields left empty; scores it too when Q carries answers and tags)

         drive-vla eval qa --policy POL --questions Q --images-root R --out DIR
         (the frames as images alone: the questions' image_paths under R)

With a dataset the policy reads each keyframe's six cameras with its ego state, past poses and command
from it. With ``--images-root`` alone the ego state, past poses and command are unknown: the observation
carries ``EgoState.unknown()`` and the model reads its learned "unknown ego" inputs (trained with
``ego_dropout``) instead of invented numbers; the camera calibration is the nominal rig's (the model does
not read calibration).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("qa", help="DriveLM QA: score predictions, or answer questions with a policy")
    p.add_argument("--questions", required=True, help="DriveLM-layout questions (test_eval.json, or questions-only)")
    p.add_argument("--predictions", default=None, help="DriveLM prediction file (output.json) to score")
    p.add_argument("--policy", default=None, metavar="DIR", help="saved DrivingPolicy that answers the questions")
    p.add_argument("--dataroot", default=None, help="nuScenes data root holding the frames (with --policy)")
    p.add_argument("--version", default=None, help="dataset version folder (with --dataroot), e.g. v1.0-trainval")
    p.add_argument("--images-root", default=None, help="folder the questions' image_paths resolve under")
    p.add_argument("--out", default=None, help="output folder (metrics.json, report.md; output.json with --policy)")
    p.add_argument(
        "--tokenizer",
        choices=("auto", "ptb", "fallback"),
        default="auto",
        help="language-metric tokenizer: ptb (Java, as DriveLM), fallback (approximate), auto = ptb if Java runs",
    )
    return p


def _fail(msg: str) -> int:
    print(f"drive-vla eval qa: {msg}", file=sys.stderr)
    return 2


def _score(questions, predictions: dict[str, str], args: argparse.Namespace) -> int:
    from drive_vla.eval.qa_metrics import evaluate_drivelm, format_qa_report

    tokenizer = None if args.tokenizer == "auto" else args.tokenizer
    try:
        result = evaluate_drivelm(questions, predictions, tokenizer).to_dict()
    except ValueError as exc:
        return _fail(str(exc))
    text = format_qa_report(result)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "report.md").write_text(text + "\n")
        print(f"wrote {out / 'metrics.json'} and {out / 'report.md'}")
    return 0


def _answer(questions, args: argparse.Namespace) -> tuple[list[dict], str | None]:
    """DriveLM submission records from the policy; (records, error)."""
    from drive_vla.data.reader import NuScenesReader
    from drive_vla.policy import DrivingPolicy

    policy = DrivingPolicy.from_pretrained(args.policy)
    reader = NuScenesReader(args.dataroot, args.version) if args.dataroot else None
    if reader is None and policy.config.ego_dropout <= 0.0:
        print(
            f"warning: {args.policy} was trained with ego_dropout 0, so its learned 'unknown ego' inputs are "
            "untrained; its answers about frames without an ego state say little",
            file=sys.stderr,
        )
    records = []
    for token, frame in questions.frames.items():
        if args.images_root:
            missing = [p for p in frame.image_paths.values() if not _image(args.images_root, p).is_file()]
            if missing:
                return [], f"--images-root {args.images_root}: frame {token}: {missing[0]} not found"
        if reader is None:
            obs, error = _images_only(frame, token, args.images_root, tuple(policy.config.vision.image_hw))
            if error:
                return [], error
        else:
            try:
                i = reader.position(token)
            except KeyError:
                return (
                    [],
                    f"questions {args.questions}: scene {frame.scene_token}, frame {token}: not a sample of {args.dataroot} {args.version}",
                )
            obs = reader[i].observation
        policy.reset()
        for k, pair in enumerate(frame.pairs):
            answer = policy.explain(obs, pair.question)
            rec = {"id": f"{frame.scene_token}_{token}_{k}", "question": pair.question, "answer": answer}
            if pair.answer is not None:
                rec["gt_answer"] = pair.answer
            records.append(rec)
    return records, None


def _images_only(frame, token: str, root: str, image_hw: tuple[int, int]):
    """(Observation of a frame from its six images alone, with an unknown ego state, None) or (None, error)."""
    from drive_vla.data.images import ImageError, decode_jpeg, jpeg_size, read_jpeg_bytes, reduction_for, resize_area
    from drive_vla.geometry import rig_calibration
    from drive_vla.types import CAMERA_NAMES, EgoState, Observation

    missing = [c for c in CAMERA_NAMES if c not in frame.image_paths]
    if missing:
        return None, f"frame {token}: image_paths has no {missing}, expected all six cameras {list(CAMERA_NAMES)}"
    wh = (int(image_hw[1]), int(image_hw[0]))
    images = {}
    for cam in CAMERA_NAMES:
        path = _image(root, frame.image_paths[cam])
        try:
            src = jpeg_size(read_jpeg_bytes(path), str(path))
            images[cam] = resize_area(decode_jpeg(path, reduction_for(src, wh)), wh)
        except (ImageError, ValueError, OSError) as exc:
            return None, f"--images-root {root}: frame {token}, camera {cam}: {exc}"
    intr, extr = rig_calibration(*wh)
    return Observation(images=images, intrinsics=intr, extrinsics=extr, ego=EgoState.unknown()), None


def _image(root: str, path: str) -> Path:
    """A DriveLM image path ("../nuscenes/samples/CAM_FRONT/x.jpg") under a nuScenes root."""
    parts = Path(path).parts
    if "samples" in parts:
        parts = parts[parts.index("samples") :]
    return Path(root).joinpath(*parts)


def run(args: argparse.Namespace) -> int:
    from drive_vla.data.qa_formats import QAFileError, load_qa_file, read_json
    from drive_vla.eval.qa_metrics import predictions_by_id

    if (args.predictions is None) == (args.policy is None):
        return _fail("give exactly one of --predictions FILE (score) or --policy DIR (answer)")
    try:
        questions = load_qa_file(args.questions)
    except QAFileError as exc:
        return _fail(str(exc).replace("qa_file", "questions", 1))
    if questions.layout != "drivelm":
        return _fail(f"questions {args.questions}: got the {questions.layout} layout, expected DriveLM's")
    if args.predictions is not None:
        try:
            predictions = predictions_by_id(read_json(args.predictions), f"predictions {args.predictions}")
        except ValueError as exc:
            return _fail(str(exc).replace("qa_file", "predictions", 1))
        return _score(questions, predictions, args)

    if (args.dataroot is None) != (args.version is None):
        return _fail("--dataroot and --version go together (the nuScenes dataset that holds the frames)")
    if args.dataroot is None and not args.images_root:
        return _fail("--policy needs --dataroot and --version (ego state, cameras), or --images-root (images alone)")
    if not args.out:
        return _fail("--policy needs --out DIR for the submission files")
    try:
        records, error = _answer(questions, args)
    except (ValueError, FileNotFoundError) as exc:
        return _fail(str(exc))
    if error:
        return _fail(error)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "output.json").write_text(json.dumps(records, indent=2) + "\n")
    submission = {"method": "", "team": "", "authors": [""], "email": "", "institution": "", "country": ""}
    (out / "submission.json").write_text(json.dumps({**submission, "results": records}, indent=2) + "\n")
    print(f"answered {len(records)} questions of {len(questions.frames)} frames; wrote {out / 'output.json'} and "
          f"{out / 'submission.json'} (fill in the team fields before uploading)")  # fmt: skip
    scorable = questions.has_answers and all(p.tags for f in questions.frames.values() for p in f.pairs)
    if scorable:
        return _score(questions, {r["id"]: r["answer"] for r in records}, args)
    return 0
