"""A corpus of malformed inputs run through the CLI in-process: each ends with one clear line, no traceback.

Every case writes its own fixture (recipes, checkpoints, training states) under tmp_path, runs
``seglab.cli.app.run`` and asserts the exit status, that stderr holds no traceback and no "internal error",
that the message is one line, and that it names the file or field and the problem. COCO panoptic inputs are
damaged copies of panopticapi's sample (shared data); the data-check half of the corpus (folders, COCO
instance JSON) is tests/data/test_check_corpus.py.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import require_dataset
from seglab.cli.app import run

TINY = {
    "description": "corpus",
    "source": "test",
    "model": {"name": "unet", "kwargs": {"base_channels": 4, "batch_norm": True}},
    "data": {"dataset": "synthetic", "kwargs": {"num_images": 8, "size": [32, 48]}, "batch_size": 4},
    "optim": {"name": "adam", "lr": 0.01},
    "schedule": {"steps": 4},
    "train": {"log_every": 1, "checkpoint_every": 2},
}


class _Evil:
    """Unpickling this would call os.system: every loader must refuse it."""

    def __reduce__(self) -> tuple:
        return (os.system, ("echo corpus-pwned",))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run (final/, best/, last.pt) every checkpoint case copies and damages."""
    tmp = tmp_path_factory.mktemp("corpus")
    recipe = tmp / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY))
    assert run(["train", "--recipe", str(recipe), "--out", str(tmp / "run"), "--quiet"]) == 0
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(tmp / "image.png")
    return tmp


@dataclass
class Case:
    """``make(tmp, trained)`` writes the fixture and returns argv; the first stderr line must hold ``expect``."""

    name: str
    make: Callable[[Path, Path], list[str]]
    expect: tuple[str, ...]
    status: int = 2


def _recipe(tmp: Path, text: str | None = None, **changes: object) -> Path:
    """Write TINY (or raw ``text``) with dotted ``changes`` ("optim__lr" -> optim.lr) to tmp/recipe.yaml."""
    path = tmp / "recipe.yaml"
    if text is None:
        data = json.loads(json.dumps(TINY))
        for dotted, value in changes.items():
            *parents, leaf = dotted.split("__")
            node = data
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        text = yaml.safe_dump(data)
    path.write_text(text)
    return path


def train_with(text: str | None = None, *extra: str, **changes: object) -> Callable[[Path, Path], list[str]]:
    def make(tmp: Path, _: Path) -> list[str]:
        return ["train", "--recipe", str(_recipe(tmp, text, **changes)), "--out", str(tmp / "out"), "--quiet", *extra]
    return make


TINY_YAML = yaml.safe_dump(TINY, sort_keys=False)

RECIPE_CASES = [
    # non-finite numbers
    Case("lr-inf", train_with(TINY_YAML.replace("lr: 0.01", "lr: .inf")), ("recipe.yaml", "optim.lr", "inf")),
    Case("lr-minus-inf", train_with(TINY_YAML.replace("lr: 0.01", "lr: -.inf")), ("optim.lr", "-inf")),
    Case("lr-nan", train_with(TINY_YAML.replace("lr: 0.01", "lr: .nan")), ("optim.lr", "nan")),
    Case("weight-decay-nan", train_with(TINY_YAML.replace("lr: 0.01", "lr: 0.01\n  weight_decay: .NaN")),
         ("optim.weight_decay", "nan")),
    Case("class-weight-inf", train_with(TINY_YAML + "loss: {class_weights: [1, .inf, 1, 1]}\n"),
         ("loss.class_weights.1", "inf")),
    Case("scale-range-inf", train_with(TINY_YAML.replace("batch_size: 4", "batch_size: 4\n  scale_range: [0.5, .inf]")),
         ("data.scale_range.1", "inf")),
    Case("override-inf", train_with(None, "--set", "optim.lr=.inf"), ("optim.lr=.inf", "inf")),
    Case("override-nan", train_with(None, "--set", "optim.momentum=.nan"), ("optim.momentum", "nan")),
    # duplicate keys
    Case("duplicate-section", train_with(TINY_YAML + "schedule: {steps: 9}\n"), ("recipe.yaml:", "'schedule'", "twice")),
    Case("duplicate-field", train_with(TINY_YAML.replace("lr: 0.01", "lr: 0.01\n  lr: 0.1")), ("'lr'", "twice")),
    Case("duplicate-flow-key", train_with(TINY_YAML + "eval: {batch_size: 1, batch_size: 2}\n"), ("'batch_size'", "twice")),
    Case("duplicate-kwarg", train_with(TINY_YAML.replace("base_channels: 4", "base_channels: 4\n    base_channels: 8")),
         ("'base_channels'", "twice")),
    # YAML syntax
    Case("unclosed-brace", train_with("model: {name: unet\ndata: [\n"), ("recipe.yaml:2:", "invalid YAML")),
    Case("bad-indent", train_with("model:\n  name: unet\n kwargs: {}\n"), ("recipe.yaml:", "invalid YAML")),
    Case("tab-indent", train_with("model:\n\tname: unet\n"), ("recipe.yaml:2:", "invalid YAML")),
    Case("unclosed-quote", train_with("description: 'oops\nmodel: {name: unet}\n"), ("recipe.yaml:", "invalid YAML")),
    Case("top-level-list", train_with("- model\n- data\n"), ("recipe.yaml", "mapping of sections")),
    Case("empty-file", train_with(""), ("recipe.yaml", "mapping of sections")),
    Case("scalar-file", train_with("just words\n"), ("recipe.yaml", "mapping of sections")),
    Case("binary-file", lambda tmp, _: (tmp / "recipe.yaml").write_bytes(b"\xff\xfe\x00\x81" * 20) and [
        "train", "--recipe", str(tmp / "recipe.yaml"), "--out", str(tmp / "out")], ("recipe.yaml", "cannot read")),
    # refused tags
    Case("tag-os-system", train_with("model: !!python/object/apply:os.system ['echo hi']\n"),
         ("recipe.yaml:1:8", "refused")),
    Case("tag-python-name", train_with("model: !!python/name:os.system\n"), ("recipe.yaml:1:", "refused")),
    Case("tag-object-new", train_with("model: !!python/object/new:collections.OrderedDict [[]]\n"),
         ("recipe.yaml:1:", "refused")),
    Case("tag-custom", train_with("model: !custom {name: unet}\n"), ("recipe.yaml:1:", "refused")),
    Case("tag-in-override", train_with(None, "--set", "optim.lr=!!python/name:os.system"), ("override", "refused")),
    # wrong types and values
    Case("kwarg-string-for-int", train_with(None, model__kwargs__base_channels="wide"),
         ("model.kwargs.base_channels", "int", "'wide'")),
    Case("kwarg-list-for-int", train_with(None, model__kwargs__base_channels=[1, 2]), ("model.kwargs.base_channels",)),
    Case("kwarg-string-for-bool", train_with(None, model__kwargs__batch_norm="maybe"), ("model.kwargs.batch_norm", "bool")),
    Case("kwarg-string-for-float", train_with(None, model__kwargs__dropout="high"), ("model.kwargs.dropout", "float")),
    Case("kwarg-unknown", train_with(None, model__kwargs__width=3), ("unet", "'width'")),
    Case("lr-string", train_with(None, optim__lr="fast"), ("optim.lr",)),
    Case("batch-size-zero", train_with(None, data__batch_size=0), ("data.batch_size",)),
    Case("batch-size-negative", train_with(None, data__batch_size=-3), ("data.batch_size",)),
    Case("field-misspelt", train_with(None, optim__lrr=0.1), ("optim.lrr", "unknown field")),
    Case("model-unknown", train_with(None, model__name="unett"), ("unett", "did you mean")),
    Case("recipe-missing", lambda tmp, _: ["train", "--recipe", str(tmp / "nope.yaml"), "--out", str(tmp / "o")],
         ("nope.yaml", "does not exist")),
    # --max-steps
    Case("max-steps-zero", train_with(None, "--max-steps", "0"), ("--max-steps", "at least 1")),
    Case("max-steps-negative", train_with(None, "--max-steps", "-1"), ("--max-steps", "-1")),
    Case("max-steps-very-negative", train_with(None, "--max-steps", "-100"), ("--max-steps",)),
]


def predict_args(*extra: str, out: str | None = None) -> Callable[[Path, Path], list[str]]:
    def make(tmp: Path, base: Path) -> list[str]:
        return ["predict", str(base / "run" / "final"), str(base / "image.png"), "--out", out or str(tmp / "p"), *extra]
    return make


def _file(tmp: Path) -> str:
    (tmp / "taken.txt").write_text("x")
    return str(tmp / "taken.txt")


DEVICE_AND_OUTPUT_CASES = [
    Case("device-gpu9-predict", predict_args("--device", "gpu9"), ("--device 'gpu9'", "cpu")),
    Case("device-tpu-predict", predict_args("--device", "tpu"), ("--device 'tpu'",)),
    Case("device-empty-predict", predict_args("--device", ""), ("--device ''",)),
    Case("device-cuda3-eval", lambda _, b: ["eval", str(b / "run" / "final"), "--device", "cuda:3"],
         ("--device 'cuda:3'",)),
    Case("device-gpu9-train", train_with(None, "--device", "gpu9"), ("--device 'gpu9'",)),
    Case("predict-out-is-file", lambda tmp, b: predict_args(out=_file(tmp))(tmp, b), ("--out", "taken.txt", "is a file")),
    Case("export-out-is-folder", lambda tmp, b: ["export", str(b / "run" / "final"), "--out", str(tmp)],
         ("--out", "is a folder")),
    Case("export-out-under-file", lambda tmp, b: ["export", str(b / "run" / "final"), "--out",
                                                  _file(tmp) + "/model.onnx"], ("cannot write --out", "taken.txt")),
]
if torch.cuda.is_available():
    DEVICE_AND_OUTPUT_CASES = [c for c in DEVICE_AND_OUTPUT_CASES if "cuda" not in c.name]
else:
    DEVICE_AND_OUTPUT_CASES.append(
        Case("device-cuda-no-gpu", predict_args("--device", "cuda"), ("--device 'cuda'", "no such CUDA device")))


def resume_with(write: Callable[[Path, Path], None], recipe: dict | None = None) -> Callable[[Path, Path], list[str]]:
    """A copy of the trained run whose last.pt is replaced by ``write(last_pt, original)``, resumed."""
    def make(tmp: Path, base: Path) -> list[str]:
        out = tmp / "run"
        shutil.copytree(base / "run", out)
        write(out / "last.pt", base / "run" / "last.pt")
        (tmp / "r.yaml").write_text(yaml.safe_dump(recipe or TINY))
        return ["train", "--recipe", str(tmp / "r.yaml"), "--out", str(out), "--resume", "--quiet"]
    return make


def _edit_state(change: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    def write(path: Path, original: Path) -> None:
        state = torch.load(original, weights_only=True)
        change(state)
        torch.save(state, path)
    return write


WIDER = {**TINY, "model": {"name": "unet", "kwargs": {"base_channels": 8, "batch_norm": True}}}
RENAMED = {**TINY, "description": "another recipe"}

RESUME_CASES = [
    Case("state-garbage", resume_with(lambda p, _: p.write_bytes(b"garbage" * 99)), ("last.pt", "cannot be read")),
    Case("state-truncated", resume_with(lambda p, o: p.write_bytes(o.read_bytes()[:4000])), ("last.pt", "truncated")),
    Case("state-empty", resume_with(lambda p, _: p.write_bytes(b"")), ("last.pt", "empty")),
    Case("state-plain-pickle", resume_with(lambda p, _: p.write_bytes(pickle.dumps({"step": 1}))),
         ("last.pt", "cannot be read")),
    Case("state-pickled-code", resume_with(lambda p, _: torch.save({"model": _Evil()}, p)),
         ("last.pt", "refused", "run code")),
    Case("state-list", resume_with(lambda p, _: torch.save([torch.zeros(2)], p)), ("last.pt", "holds a list")),
    Case("state-other-dict", resume_with(lambda p, _: torch.save({"weights": torch.zeros(3)}, p)),
         ("last.pt", "not a training state", "weights")),
    Case("state-other-shapes", resume_with(_edit_state(lambda s: s["model"].update(
        {"classifier.weight": torch.zeros(9, 4, 1, 1)}))), ("last.pt", "classifier.weight", "[9, 4, 1, 1]")),
    Case("state-other-model", resume_with(lambda p, o: None, recipe=WIDER), ("last.pt", "written by", "this run is")),
    Case("state-other-recipe", resume_with(lambda p, o: None, recipe=RENAMED),
         ("last.pt", "'corpus'", "'another recipe'")),
    Case("state-no-run-record-other-shapes", resume_with(_edit_state(lambda s: s.pop("run")), recipe=WIDER),
         ("last.pt", "does not fit")),
    Case("state-missing-key", resume_with(_edit_state(lambda s: s.pop("optimizer"))), ("last.pt", "optimizer")),
    Case("state-bad-optimizer", resume_with(_edit_state(lambda s: s.update(optimizer={"state": {}, "param_groups": []}))),
         ("last.pt", "optimizer")),
]


def checkpoint_with(damage: Callable[[Path], None], command: str = "eval") -> Callable[[Path, Path], list[str]]:
    """A copy of final/ damaged by ``damage(folder)``, then ``seglab eval`` (or predict/export) on it."""
    def make(tmp: Path, base: Path) -> list[str]:
        folder = tmp / "ckpt"
        shutil.copytree(base / "run" / "final", folder)
        damage(folder)
        if command == "predict":
            return ["predict", str(folder), str(base / "image.png"), "--out", str(tmp / "p")]
        return [command, str(folder)] + (["--out", str(tmp / "m.onnx")] if command == "export" else [])
    return make


def _edit_config(**changes: object) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        for key, value in changes.items():
            if key == "model_kwargs":
                config["model_kwargs"].update(value)
            elif value is None:
                config.pop(key)
            else:
                config[key] = value
        (folder / "config.json").write_text(json.dumps(config))
    return damage


CHECKPOINT_CASES = [
    Case("config-num-classes", checkpoint_with(_edit_config(num_classes=7)),
         ("model.safetensors does not match", "config.json", "num_classes=7")),
    Case("config-width", checkpoint_with(_edit_config(model_kwargs={"base_channels": 8})),
         ("does not match", "base_channels")),
    Case("config-width-predict", checkpoint_with(_edit_config(model_kwargs={"base_channels": 8}), "predict"),
         ("does not match",)),
    Case("config-width-export", checkpoint_with(_edit_config(model_kwargs={"base_channels": 8}), "export"),
         ("does not match",)),
    Case("config-batch-norm-off", checkpoint_with(_edit_config(model_kwargs={"batch_norm": False})),
         ("does not match", "batch_norm")),
    Case("config-unknown-kwarg", checkpoint_with(_edit_config(model_kwargs={"width": 2})), ("config.json", "'width'")),
    Case("config-bad-kwarg-type", checkpoint_with(_edit_config(model_kwargs={"base_channels": "four"})),
         ("config.json", "model.kwargs.base_channels")),
    Case("config-unknown-model", checkpoint_with(_edit_config(model="unett")), ("unett",)),
    Case("config-no-model", checkpoint_with(_edit_config(model=None)), ("config.json", "'model'")),
    Case("config-bad-num-classes", checkpoint_with(_edit_config(num_classes="many")), ("num_classes", "'many'")),
    Case("config-invalid-json", checkpoint_with(lambda f: (f / "config.json").write_text("{oops")),
         ("config.json", "invalid JSON")),
    Case("weights-truncated", checkpoint_with(lambda f: (f / "model.safetensors").write_bytes(
        (f / "model.safetensors").read_bytes()[:300])), ("model.safetensors", "cannot read")),
    Case("weights-garbage", checkpoint_with(lambda f: (f / "model.safetensors").write_bytes(b"\0" * 64)),
         ("model.safetensors", "cannot read")),
    Case("weights-missing", checkpoint_with(lambda f: (f / "model.safetensors").unlink()),
         ("ckpt", "has no model.safetensors")),
    Case("checkpoint-missing", lambda tmp, _: ["eval", str(tmp / "nope" / "final")], ("nope", "does not exist")),
    Case("checkpoint-missing-predict", lambda tmp, b: ["predict", str(tmp / "nope"), str(b / "image.png")],
         ("nope", "does not exist")),
    Case("checkpoint-not-a-run", lambda tmp, _: ["eval", str(tmp)], ("has no config.json",)),
]


def _pretrained(content: Callable[[Path], None], suffix: str = ".pth") -> Callable[[Path, Path], list[str]]:
    """A recipe whose backbone starts from a local weights file written by ``content``."""
    def make(tmp: Path, _: Path) -> list[str]:
        weights = tmp / f"backbone{suffix}"
        content(weights)
        recipe = {**TINY, "model": {"name": "deeplabv3_resnet101", "kwargs": {
            "backbone": "resnet18", "pretrained_backbone": str(weights)}}}
        (tmp / "r.yaml").write_text(yaml.safe_dump(recipe))
        return ["train", "--recipe", str(tmp / "r.yaml"), "--out", str(tmp / "out"), "--quiet"]
    return make


WEIGHTS_FILE_CASES = [
    Case("pretrained-pickled-code", _pretrained(lambda p: torch.save({"state_dict": _Evil()}, p)),
         ("backbone.pth", "refused", "safetensors")),
    Case("pretrained-garbage", _pretrained(lambda p: p.write_bytes(b"nope" * 50)), ("backbone.pth", "cannot be read")),
    Case("pretrained-empty", _pretrained(lambda p: p.write_bytes(b"")), ("backbone.pth", "empty")),
    Case("pretrained-list", _pretrained(lambda p: torch.save([1, 2], p)), ("backbone.pth", "not a state dict")),
    Case("pretrained-wrong-suffix", _pretrained(lambda p: p.write_bytes(b"x"), ".ckpt"), ("backbone.ckpt", "suffix")),
    Case("pretrained-bad-safetensors", _pretrained(lambda p: p.write_bytes(b"\1" * 40), ".safetensors"),
         ("backbone.safetensors", "cannot read")),
]

PANOPTIC_FILES = ("panoptic_examples.json", "panoptic_examples", "input_images")
PNG = "pan/panoptic_examples/000000142238.png"


def panoptic_with(damage: Callable[[Path], None]) -> Callable[[Path, Path], list[str]]:
    """A copy of panopticapi's sample (COCO panoptic JSON + PNGs) under tmp/root/pan, damaged, then checked."""
    def make(tmp: Path, _: Path) -> list[str]:
        source = require_dataset("coco_panoptic_sample")
        (tmp / "root" / "pan").mkdir(parents=True)
        for name in PANOPTIC_FILES:
            (shutil.copytree if (source / name).is_dir() else shutil.copy)(source / name, tmp / "root" / "pan" / name)
        damage(tmp / "root")
        return ["data", "check", "coco_panoptic", "--data-root", str(tmp / "root"), "-O", "folder=pan", "-O",
                "json_file=panoptic_examples.json", "-O", "panoptic_dir=panoptic_examples", "-O",
                "image_dir=input_images", "--split", "val"]
    return make


def _panoptic_json(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = root / "pan" / "panoptic_examples.json"
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
    return damage


def _segments(data: dict) -> list:
    return data["annotations"][0]["segments_info"]


def _png(convert: Callable[[Image.Image], Image.Image]) -> Callable[[Path], None]:
    return lambda root: convert(Image.open(root / PNG)).save(root / PNG)


PANOPTIC_CASES = [
    Case("panoptic-segment-not-listed", panoptic_with(_panoptic_json(lambda d: _segments(d).pop(0))),
         ("000000142238.png", "segment id(s) [3937500] not in")),
    Case("panoptic-segment-without-pixels", panoptic_with(_panoptic_json(
        lambda d: _segments(d).append({**_segments(d)[0], "id": 999999}))), ("[999999]", "no pixel")),
    Case("panoptic-segment-twice", panoptic_with(_panoptic_json(lambda d: _segments(d).append(_segments(d)[0]))),
         ("panoptic_examples.json", "listed twice")),
    Case("panoptic-unknown-category", panoptic_with(_panoptic_json(lambda d: _segments(d)[0].update(category_id=4242))),
         ("panoptic_examples.json", "unknown category_id 4242")),
    Case("panoptic-category-twice", panoptic_with(_panoptic_json(lambda d: d["categories"].append(d["categories"][0]))),
         ("categories[133]", "appears twice")),
    Case("panoptic-unknown-image-id", panoptic_with(_panoptic_json(lambda d: d["annotations"][0].update(image_id=1))),
         ("annotations[0]", "image_id 1")),
    Case("panoptic-file-name-escapes", panoptic_with(_panoptic_json(
        lambda d: d["annotations"][0].update(file_name="../../../etc/passwd"))), ("'../../../etc/passwd'", "outside")),
    Case("panoptic-no-segments-info", panoptic_with(_panoptic_json(lambda d: d["annotations"][0].pop("segments_info"))),
         ("annotations[0]", "segments_info")),
    Case("panoptic-png-missing", panoptic_with(lambda root: (root / PNG).unlink()), ("000000142238.png", "missing")),
    Case("panoptic-png-grayscale", panoptic_with(_png(lambda im: im.convert("L"))), ("000000142238.png", "mode 'L'")),
    Case("panoptic-png-wrong-size", panoptic_with(_png(lambda im: im.resize((100, 80), Image.NEAREST))),
         ("size mismatch", "000000142238.png", "100x80")),
    Case("panoptic-json-truncated", panoptic_with(lambda root: (root / "pan" / "panoptic_examples.json").write_text(
        (root / "pan" / "panoptic_examples.json").read_text()[:500])), ("panoptic_examples.json", "not valid JSON")),
]

CASES = (RECIPE_CASES + DEVICE_AND_OUTPUT_CASES + RESUME_CASES + CHECKPOINT_CASES + WEIGHTS_FILE_CASES
         + PANOPTIC_CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_one_clear_line(case: Case, trained: Path, tmp_path: Path,
                                        capfd: pytest.CaptureFixture[str]) -> None:
    argv = case.make(tmp_path, trained)
    capfd.readouterr()
    status = run(argv)
    out, err = capfd.readouterr()
    assert "corpus-pwned" not in out + err  # no pickled payload ever ran
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == case.status, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert len(lines) == 1, err
    for expected in case.expect:
        assert expected in lines[0], f"{expected!r} not in: {lines[0]}"


def test_the_corpus_is_large() -> None:
    assert len(CASES) >= 90  # with tests/data/test_check_corpus.py well over the 100 the reliability issue asks

