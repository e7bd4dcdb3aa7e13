"""`python -m core worker`: the JSON-lines protocol the Blender add-on speaks, in a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.api import load_generator
from helpers import cli_env

ROOT = Path(__file__).resolve().parent.parent


# `python -m core worker` in an interpreter where `import torch` fails, as in Blender's own Python
WITHOUT_TORCH = "import sys; sys.modules['torch'] = None; from core.cli import main; sys.exit(main())"


def run_worker(requests: list[dict | str], *args: str, torch: bool = True) -> list[dict]:
    """Feed requests (then end of input) to a fresh worker (`torch`: False makes torch unimportable in it)
    → every line it printed, parsed."""
    lines = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in requests)
    start = ["-m", "core"] if torch else ["-c", WITHOUT_TORCH]
    res = subprocess.run([sys.executable, *start, "worker", *args], input=lines, capture_output=True,
                         text=True, cwd=ROOT, env=cli_env(), timeout=300)
    assert res.returncode in (0, 3), res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


def by_id(events: list[dict], rid: int) -> list[dict]:
    return [e for e in events if e.get("id") == rid]


def test_generate_error_batch_in_one_warm_worker(tiny_models, tmp_path):
    events = run_worker([
        {"id": 1, "cmd": "generate", "style": "grass", "seed": 2, "size": 256, "out": str(tmp_path / "a.png")},
        {"id": 2, "cmd": "generate", "style": "lava", "out": str(tmp_path / "b.png")},
        "this is not json",
        {"id": 3, "cmd": "batch", "styles": ["brick"], "seeds": [0, 1], "size": 256, "out": str(tmp_path / "batch"),
         "previews": 16},
        {"id": 4, "cmd": "paint"},
        {"id": 5, "cmd": "batch", "styles": ["brick"], "seeds": [2], "size": 256, "out": str(tmp_path / "b2"),
         "previews": -1},
    ], "--models", str(tiny_models))
    assert events[0]["event"] == "ready" and events[0]["styles"] == ["brick", "grass"]
    result = by_id(events, 1)[-1]
    assert result["event"] == "result" and Image.open(result["files"]["albedo"]).size == (256, 256)
    assert result["training_data"] == {"random init (tests)": "CC0-1.0"}  # from the weights' metadata
    assert by_id(events, 2) == [{"id": 2, "event": "error",
                                 "message": "unknown style 'lava': choose from brick, grass"}]
    assert not (tmp_path / "b.png").exists()
    assert any(e["event"] == "error" and "bad request line" in e["message"] for e in events if "id" not in e)
    batch = by_id(events, 3)
    assert [e["done"] for e in batch if e["event"] == "progress"] == [0, 1, 2]
    manifest = json.loads(Path(batch[-1]["manifest"]).read_text())
    assert sorted(i["files"]["albedo"] for i in manifest["images"]) == ["brick_0_albedo.png", "brick_1_albedo.png"]
    for entry in manifest["images"]:  # a small picture of each set, for Blender's asset previews
        assert entry["preview"] == f".previews/brick_{entry['seed']}.png"
        shown = np.asarray(Image.open(tmp_path / "batch" / entry["preview"]), dtype=float)
        albedo = np.asarray(Image.open(tmp_path / "batch" / entry["files"]["albedo"]), dtype=float)
        assert shown.shape == (16, 16, 3)
        np.testing.assert_allclose(shown, albedo.reshape(16, 16, 16, 16, 3).mean(axis=(1, 3)), atol=1)  # box filter
    assert by_id(events, 5) == [{"id": 5, "event": "error",
                                 "message": "previews -1: a side from 1 to 1024 pixels, or 0 for none"}]
    assert not (tmp_path / "b2").exists()
    assert by_id(events, 4)[0]["event"] == "error" and "unknown command 'paint'" in by_id(events, 4)[0]["message"]


def test_cancel_before_start_and_bad_map(tiny_models, tmp_path):
    tmp_path = tmp_path / "out"
    events = run_worker([
        {"id": 1, "cmd": "generate", "style": "grass", "size": 256, "maps": ["albedo", "shine"],
         "out": str(tmp_path / "a.png")},
        {"id": 2, "cmd": "generate", "style": "grass", "size": 256, "out": str(tmp_path / "b.png")},
        {"cmd": "cancel", "id": 2},
    ], "--models", str(tiny_models))
    assert "unknown map 'shine'" in by_id(events, 1)[-1]["message"]
    assert by_id(events, 2)[-1]["event"] == "cancelled" and not tmp_path.exists()


def test_missing_models_is_fatal_with_one_line(tmp_path):
    events = run_worker([], "--models", str(tmp_path / "nowhere"))
    assert events == [{"event": "fatal", "message": f"models folder {tmp_path / 'nowhere'} does not exist"}]


def test_relative_out_paths_are_refused(tiny_models):
    """The add-on starts the worker in the extension's install folder: a relative path would land there."""
    import shutil

    names = ["rel-out-test-a.png", "rel-out-test-batch", "rel-out-test-thumbs"]
    try:
        events = run_worker([
            {"id": 1, "cmd": "generate", "style": "grass", "size": 256, "out": names[0]},
            {"id": 2, "cmd": "batch", "styles": ["grass"], "seeds": [0], "size": 256, "out": names[1]},
            {"id": 3, "cmd": "thumbnails", "size": 16, "out": names[2]},
        ], "--models", str(tiny_models))
        for rid, name in enumerate(names, 1):
            (event,) = by_id(events, rid)[-1:]
            assert event["event"] == "error" and f"out {name!r} is a relative path" in event["message"], event
            assert not (ROOT / name).exists()
    finally:
        for name in names:
            shutil.rmtree(ROOT / name, ignore_errors=True)
            (ROOT / name).unlink(missing_ok=True)


# without torch: the worker runs core.runtime on ONNX Runtime

@pytest.fixture
def onnx_models(tiny_models) -> Path:
    """The tiny models folder with its ONNX graphs (exported here, where torch is)."""
    from core.export_onnx import export_folder

    export_folder(tiny_models)
    return tiny_models


def test_without_torch_the_worker_runs_on_onnx_runtime(onnx_models, tmp_path):
    events = run_worker([
        {"id": 1, "cmd": "generate", "style": "grass", "seed": 2, "size": 256, "maps": ["albedo", "normal", "height"],
         "out": str(tmp_path / "one") + "/"},
        {"id": 2, "cmd": "batch", "styles": ["brick"], "seeds": [0, 1], "size": 256, "out": str(tmp_path / "batch"),
         "maps": ["albedo", "roughness"]},
        {"id": 3, "cmd": "thumbnails", "size": 32, "out": str(tmp_path / "thumbs")},
        {"id": 4, "cmd": "generate", "style": "lava", "out": str(tmp_path / "x.png")},
    ], "--models", str(onnx_models), torch=False)
    ready = events[0]
    assert ready["event"] == "ready" and ready["runtime"].startswith("onnxruntime ")
    assert ready["device"] == "cpu" and "cpu" in ready["devices"] and ready["upscalers"] == [2, 4]
    files = by_id(events, 1)[-1]["files"]
    assert [(e["done"], e["total"]) for e in by_id(events, 1) if e["event"] == "progress"] == [(0, 1), (1, 1)]
    gen = load_generator(device="cpu", models_dir=onnx_models)  # the PyTorch path, for comparison
    want = gen.generate_maps("grass", seed=2, size=256, maps=("albedo", "normal", "height"))
    for m in ("albedo", "normal", "height"):
        got = np.asarray(Image.open(files[m]))
        assert got.shape == want[m].shape and got.dtype == want[m].dtype, m
        # the albedos agree within one level of 8 bits (float rounding); the maps derive from them
        tol = {"albedo": 1, "normal": 2, "height": 256}[m]
        diff = np.abs(got.astype(np.int64) - want[m].astype(np.int64)).max()
        assert diff <= tol, (m, diff)
    manifest = json.loads(Path(by_id(events, 2)[-1]["manifest"]).read_text())
    assert manifest["device"] == "cpu" and len(manifest["images"]) == 2
    assert manifest["training_data"] == {"random init (tests)": "CC0-1.0"}
    assert sorted(manifest["images"][0]["files"]) == ["albedo", "roughness"]
    thumbs = by_id(events, 3)[-1]["files"]
    assert sorted(thumbs) == ["brick", "grass"] and Image.open(thumbs["grass"]).size == (32, 32)
    assert by_id(events, 4) == [{"id": 4, "event": "error", "message": "unknown style 'lava': choose from brick, grass"}]


def test_without_torch_a_device_onnx_runtime_lacks_is_fatal(tiny_models):
    (event,) = run_worker([], "--models", str(tiny_models), "--device", "mps", torch=False)
    assert event["event"] == "fatal"
    assert event["message"].startswith("device 'mps' is not offered by ONNX Runtime") and "cpu" in event["message"]


@pytest.mark.parametrize("torch", [True, False], ids=["torch", "onnx"])
def test_maps_request_makes_a_photo_seamless_and_derives_its_maps(tiny_models, tmp_path, torch, request):
    """`maps` (Material from Image): numpy and Pillow only, so the same files on both runtimes; bad input is
    one line and writes nothing."""
    rng = np.random.default_rng(0)
    photo = tmp_path / "my wall.jpg"
    Image.fromarray(rng.integers(0, 255, (150, 200, 3), dtype=np.uint8)).save(photo)
    (tmp_path / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    models = tiny_models if torch else request.getfixturevalue("onnx_models")
    events = run_worker([
        {"id": 1, "cmd": "maps", "input": str(photo), "out": str(out), "maps": ["albedo", "normal", "roughness"],
         "roughness": 0.6},
        {"id": 2, "cmd": "maps", "input": str(tmp_path / "notes.txt"), "out": str(out / "bad")},
        {"id": 3, "cmd": "maps", "input": str(photo), "out": str(out / "bad"), "roughness": 7},
        {"id": 4, "cmd": "maps", "input": str(tmp_path / "missing.png"), "out": str(out / "bad")},
    ], "--models", str(models), torch=torch)
    result = by_id(events, 1)[-1]
    assert [e["done"] for e in by_id(events, 1) if e["event"] == "progress"] == [0, 1, 2]
    assert result["size"] == [200, 150] and sorted(result["files"]) == ["albedo", "normal", "roughness"]
    assert result["files"]["albedo"] == str(out / "my-wall_albedo.png")
    albedo = np.asarray(Image.open(result["files"]["albedo"])).astype(np.int64)
    roughness = np.asarray(Image.open(result["files"]["roughness"]))
    assert albedo.shape[:2] == roughness.shape
    # seamless: the step across the wrap is like a step inside the image
    inside = np.abs(np.diff(albedo, axis=1)).mean()
    assert np.abs(albedo[:, 0] - albedo[:, -1]).mean() < 1.5 * inside
    for rid, text in ((2, "notes.txt"), (3, "roughness"), (4, "missing.png")):
        (event,) = by_id(events, rid)
        assert event["event"] == "error" and text in event["message"] and "\n" not in event["message"], event
    assert not (out / "bad").exists()


def test_learn_request_to_train_without_torch_says_what_it_needs(onnx_models, tmp_path):
    events = run_worker([{"id": 1, "cmd": "learn", "inputs": [str(tmp_path / "a.png")], "name": "mine",
                          "method": "gan"}], "--models", str(onnx_models), torch=False)
    (event,) = by_id(events, 1)
    assert event["event"] == "error" and "PyTorch" in event["message"] and "Worker Python" in event["message"]


def test_a_photo_style_is_made_and_drawn_without_torch(onnx_models, tmp_path):
    """learn's default method (a photo style) needs neither torch nor training/: the ONNX worker makes it,
    offers it at once and draws it; a bad method is one line."""
    from training_helpers import smooth_noise

    photo = tmp_path / "wall.png"
    Image.fromarray((smooth_noise(3, 160, 200) * 255).round().astype(np.uint8)).save(photo)
    events = run_worker([{"id": 1, "cmd": "learn", "inputs": [str(photo)], "name": "my_wall"},
                         {"id": 2, "cmd": "generate", "style": "my_wall", "size": 256, "seed": 4,
                          "out": str(tmp_path / "t.png")},
                         {"id": 3, "cmd": "learn", "inputs": [str(photo)], "name": "w2", "method": "paint"}],
                        "--models", str(onnx_models), torch=False)
    (result,) = [e for e in by_id(events, 1) if e["event"] == "result"]
    assert result["style"] == "my_wall" and "my_wall" in result["styles"]
    assert Path(result["file"]) == onnx_models / "my_wall.safetensors"
    assert [e["event"] for e in by_id(events, 2)][-1] == "result"
    assert np.asarray(Image.open(tmp_path / "t.png")).shape == (256, 256, 3)
    assert by_id(events, 3)[-1] == {"id": 3, "event": "error", "message": "method 'paint': use 'quilt' or 'gan'"}


def test_learn_request_refuses_relative_inputs(tiny_models):
    events = run_worker([{"id": 1, "cmd": "learn", "inputs": ["photos/a.png"], "name": "mine"}],
                        "--models", str(tiny_models))
    assert by_id(events, 1) == [{"id": 1, "event": "error",
                                 "message": "inputs ['photos/a.png'] must be absolute paths"}]


def test_an_unknown_style_names_the_files_that_did_not_load(tiny_models, tmp_path):
    """A style the user sees (read from a file's header) may be in a file the worker cannot load: say so."""
    import shutil

    models = tmp_path / "mine"
    shutil.copytree(tiny_models, models)
    (models / "lava.safetensors").write_bytes(b"not a weights file")
    events = run_worker([{"id": 1, "cmd": "generate", "style": "lava", "out": str(tmp_path / "x.png")}],
                        "--models", str(models))
    (event,) = by_id(events, 1)
    assert event["message"].startswith("unknown style 'lava': choose from brick, grass (not loaded: ")
    assert "lava.safetensors" in event["message"] and "\n" not in event["message"]
