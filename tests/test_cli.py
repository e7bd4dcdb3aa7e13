"""The `python -m core` CLI, on tiny random weights passed with --models.

Every user mistake must end the same way: exit status 2, exactly one line on stderr starting with
"error:", no traceback, and nothing written. Each CLI subprocess spends most of its second importing
torch, so every bad-input case runs in-process through `core.cli.main` (same code, same stderr), and a
subset that covers each kind of failure (before loading, while loading, after loading, batch) also runs
as real `python -m core` subprocesses, all at once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import cli
from helpers import REPO, STYLES, cli_env, make_models_folder, regular_file, run_cli_parallel, text_png
from helpers import run_cli as run_cli_plain

VALID_SIZE = "multiple of 64 from 256 to 8192"


# helpers

def png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        return np.asarray(im.convert("RGB"))


def write_png(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr).save(path, format="PNG")
    return path


def periodic_rgb(h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    chans = [np.sin(2 * np.pi * (xs / w + 2 * ys / h)), np.cos(2 * np.pi * 3 * xs / w),
             np.sin(2 * np.pi * (ys / h - xs / w) + 1)]
    return (127.5 + 100 * np.stack(chans, axis=-1)).round().astype(np.uint8)


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


# bad input: each case builds its inputs in its own folder and returns (argv, text the error must contain)

def _corrupt_models(d: Path) -> Path:
    folder = d / "badmodels"
    folder.mkdir()
    (folder / "gan.safetensors").write_bytes(b"\x00" * 100)
    return folder




def _manifest(d: Path, text: str) -> Path:
    (d / "batch").mkdir()
    (d / "batch" / "manifest.json").write_text(text)
    return d / "batch"


def _input_png(d: Path) -> Path:
    return write_png(d / "in.png", periodic_rgb(16, 24))


def _gen(m, d, *extra, style="brick", size="256", out=None, models=None):
    return ["generate", "--style", style, "--size", size, "--out", out or d / "out.png", "--models", models or m,
            *extra]


BAD_CASES = {
    "unknown style": (lambda m, d: _gen(m, d, style="lava"), "brick, grass"),
    "unknown style in a mix": (lambda m, d: _gen(m, d, style="brick:0.5+lava:0.5"), "lava"),
    "bad style weight": (lambda m, d: _gen(m, d, style="brick:x"), "not a number"),
    "nan style weight": (lambda m, d: _gen(m, d, style="brick:nan+grass"), "finite"),
    "size 0": (lambda m, d: _gen(m, d, size="0"), VALID_SIZE),
    "size -64": (lambda m, d: _gen(m, d, size="-64"), VALID_SIZE),
    "size 100": (lambda m, d: _gen(m, d, size="100"), VALID_SIZE),
    "size 100000": (lambda m, d: _gen(m, d, size="100000"), VALID_SIZE),
    "negative seed": (lambda m, d: _gen(m, d, "--seed", "-1"), "seed"),
    "huge seed": (lambda m, d: _gen(m, d, "--seed", str(2**70)), "seed"),
    "unknown device": (lambda m, d: _gen(m, d, "--device", "tpu"), "auto, cpu, cuda, mps"),
    "output not .png": (lambda m, d: _gen(m, d, out=d / "out.jpg"), ".png"),
    "unknown map": (lambda m, d: _gen(m, d, "--maps", "albedo,shine"), "albedo, normal, height, roughness, ao"),
    "batch unknown map": (lambda m, d: ["batch", "--seeds", "0", "--size", "256", "--maps", "bump",
                                        "--out", d / "batch", "--models", m], "unknown map 'bump'"),
    "output parent is a file": (lambda m, d: _gen(m, d, out=regular_file(d) / "out.png"), "afile"),
    "output grandparent is a file": (lambda m, d: _gen(m, d, out=regular_file(d) / "sub" / "out.png"), "afile"),
    "missing models folder": (lambda m, d: _gen(m, d, models=d / "nomodels"), "nomodels"),
    "models folder is a file": (lambda m, d: _gen(m, d, models=regular_file(d)), "is a file, expected a folder"),
    "corrupt-only models folder": (lambda m, d: _gen(m, d, models=_corrupt_models(d)), "no usable generator"),
    "styles, corrupt-only models folder": (lambda m, d: ["styles", "--models", _corrupt_models(d)],
                                           "badmodels"),
    "upscale missing input": (lambda m, d: ["upscale", d / "missing.png", "--out", d / "out.png",
                                            "--models", m], "missing.png"),
    "upscale non-image input": (lambda m, d: ["upscale", text_png(d), "--out", d / "out.png", "--models", m],
                                "not a readable image"),
    "upscale a folder": (lambda m, d: ["upscale", d, "--out", d / "out.png", "--models", m], "is a folder"),
    "upscale output parent is a file": (lambda m, d: ["upscale", _input_png(d), "--out",
                                                      regular_file(d) / "out.png", "--models", m], "afile"),
    "upscale output not .png": (lambda m, d: ["upscale", _input_png(d), "--out", d / "out.tif",
                                              "--models", m], ".png"),
    "upscale bad scale": (lambda m, d: ["upscale", _input_png(d), "--scale", "3", "--out", d / "out.png",
                                        "--models", m], "2 or 4"),
    "batch bad seeds range": (lambda m, d: ["batch", "--seeds", "5-2", "--size", "256", "--out", d / "batch",
                                            "--models", m], "5-2 ends before it starts"),
    "batch too many seeds": (lambda m, d: ["batch", "--seeds", "0-999999999", "--size", "256", "--out",
                                           d / "batch", "--models", m], "more than 100000 seeds"),
    "batch bad seeds text": (lambda m, d: ["batch", "--seeds", "a,b", "--size", "256", "--out", d / "batch",
                                           "--models", m], "0-63"),
    "batch negative seed": (lambda m, d: ["batch", "--seeds", "-3", "--size", "256", "--out", d / "batch",
                                          "--models", m], "-3 is negative"),
    "batch no style named": (lambda m, d: ["batch", "--styles", ",", "--seeds", "0", "--size", "256",
                                           "--out", d / "batch", "--models", m], "names no style"),
    "batch unknown style": (lambda m, d: ["batch", "--styles", "brick,lava", "--seeds", "0", "--size", "256",
                                          "--out", d / "batch", "--models", m], "brick, grass"),
    "batch bad size": (lambda m, d: ["batch", "--seeds", "0", "--size", "1000", "--out", d / "batch",
                                     "--models", m], VALID_SIZE),
    "batch corrupt manifest": (lambda m, d: ["batch", "--seeds", "0", "--size", "256", "--out",
                                             _manifest(d, "not json"), "--models", m], "manifest.json"),
    "batch foreign manifest": (lambda m, d: ["batch", "--seeds", "0", "--size", "256", "--out",
                                             _manifest(d, '{"images": [{"file": "x.png"}]}'), "--models", m],
                               "not a Tessera batch manifest"),
    "batch out is a file": (lambda m, d: ["batch", "--seeds", "0", "--size", "256", "--out", regular_file(d),
                                          "--models", m], "is a file"),
}
if Path("/proc/self").is_dir():  # Linux: a folder no one can create files in, root included
    BAD_CASES["output in /proc"] = (lambda m, d: _gen(m, d, out=Path("/proc/out.png")), "cannot write to /proc")
    BAD_CASES["batch out in /proc"] = (lambda m, d: ["batch", "--seeds", "0", "--size", "256", "--out",
                                                     Path("/proc/batch"), "--models", m], "cannot write to /proc")


SUBPROCESS_CASES = ["size 100", "corrupt-only models folder", "unknown style", "upscale non-image input",
                    "batch bad seeds range"]


def check_failed_run(case: str, rc: int, stdout: str, stderr: str, folder: Path, before: set[Path]) -> None:
    assert rc == 2, (rc, stderr)
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert BAD_CASES[case][1] in lines[0], lines[0]
    assert stdout == ""
    assert files_under(folder) == before, "a failed command must not write anything"


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_in_process(case, tiny_models, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)   # main() replaces it
    monkeypatch.delenv("TESSERA_MODELS", raising=False)
    folder = tmp_path / "case"
    folder.mkdir()
    argv = [str(a) for a in BAD_CASES[case][0](tiny_models, folder)]
    before = files_under(folder)
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("always")   # as in a fresh process: no warning is hidden as a repeat
        rc = cli.main(argv)
    out, err = capsys.readouterr()
    check_failed_run(case, rc, out, err, folder, before)


@pytest.fixture(scope="module")
def bad_subprocess_runs(tmp_path_factory):
    """Run the SUBPROCESS_CASES commands at once → {name: (result, case folder, files before the run)}."""
    root = tmp_path_factory.mktemp("bad")
    models = make_models_folder(root / "models")
    jobs = {}
    for i, name in enumerate(SUBPROCESS_CASES):
        d = root / f"case{i}"
        d.mkdir()
        args = BAD_CASES[name][0](models, d)
        jobs[name] = (args, d, files_under(d))
    results = run_cli_parallel(*(args for args, _, _ in jobs.values()), max_workers=len(jobs))
    return {name: (res, d, before) for (name, (_, d, before)), res in zip(jobs.items(), results)}


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_bad_input_subprocess(bad_subprocess_runs, case):
    res, folder, before = bad_subprocess_runs[case]
    check_failed_run(case, res.returncode, res.stdout, res.stderr, folder, before)


def test_argument_mistakes_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["generate", "--style", "grass", "--size", "abc", "--out", "x.png"])
    assert e.value.code == 2
    assert capsys.readouterr().err == "error: argument --size: invalid int value: 'abc' (see tessera generate --help)\n"


def test_missing_models_folder_from_the_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TESSERA_MODELS", str(tmp_path / "nowhere"))
    assert cli.main(["styles"]) == 2
    assert capsys.readouterr().err == f"error: $TESSERA_MODELS={tmp_path / 'nowhere'} does not exist\n"


def test_os_errors_are_one_line(capsys, monkeypatch):
    """A full disk or a read-only file system mid-run: the file and the reason, exit 1, no traceback."""
    import errno

    def full_disk(_args):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out.png")

    monkeypatch.setitem(cli.COMMANDS, "styles", (full_disk, ""))
    assert cli.main(["styles"]) == 1
    assert capsys.readouterr().err == "error: /data/out.png: No space left on device\n"


def test_oversized_image_is_refused_by_name(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from core.imageio import read_image

    path = write_png(tmp_path / "big.png", np.zeros((64, 64, 3), np.uint8))
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses images over twice this
    with pytest.raises(ValueError, match="big.png: too large to read"):
        read_image(path)


# styles and generate

def test_styles(tiny_models):
    plain, as_json = run_cli_parallel(["styles", "--models", tiny_models],
                                      ["styles", "--json", "--models", tiny_models])
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.split() == STYLES
    assert as_json.returncode == 0, as_json.stderr
    records = json.loads(as_json.stdout)
    assert [r["name"] for r in records] == STYLES
    assert all(Path(r["weights"]).parent == tiny_models for r in records)


def test_generate_png_and_json(tiny_models, tmp_path):
    out = tmp_path / "sub" / "brick.png"   # missing folders are created
    again = tmp_path / "again.png"
    res, plain = run_cli_parallel(
        ["generate", "--style", "brick", "--seed", "3", "--size", "320", "--out", out, "--models", tiny_models,
         "--json"],
        ["generate", "--style", "brick", "--seed", "3", "--size", "320", "--out", again, "--models", tiny_models])
    assert res.returncode == 0, res.stderr
    record = json.loads(res.stdout)
    assert record["path"] == str(out) and record["style"] == "brick" and record["seed"] == 3
    assert record["size"] == 320 and record["device"] == "cpu" and record["seconds"] >= 0
    img = png(out)
    assert img.shape == (320, 320, 3) and img.std() > 1.0
    assert sorted(p.name for p in out.parent.iterdir()) == ["brick.png"]   # no temp files left
    # plain output is just the path; the same seed gives the same pixels
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == str(again)
    assert np.array_equal(png(again), img)



def test_generate_faithful_takes_the_psnr_upscaler_over_the_detail_one(tiny_models, tmp_path):
    from core import load_generator
    from helpers import save_upscaler, tiny_upscaler

    save_upscaler(tiny_models / "sr-x4-detail.safetensors", tiny_upscaler(4, seed=7), role="detail")
    gen = load_generator(device="cpu", models_dir=tiny_models)
    args = ["generate", "--style", "grass", "--seed", "2", "--size", "256", "--models", tiny_models]
    detail, faithful = run_cli_parallel([*args, "--out", tmp_path / "d.png"],
                                        [*args, "--out", tmp_path / "f.png", "--faithful"])
    assert detail.returncode == faithful.returncode == 0, detail.stderr + faithful.stderr
    assert np.array_equal(png(tmp_path / "d.png"), gen.generate("grass", seed=2, size=256))
    assert np.array_equal(png(tmp_path / "f.png"), gen.generate("grass", seed=2, size=256, faithful=True))


# upscale

def test_upscale_tileable_and_not(tiny_models, tmp_path):
    src = write_png(tmp_path / "in.png", periodic_rgb(24, 40))
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    results = run_cli_parallel(["upscale", src, "--scale", "4", "--out", a, "--models", tiny_models],
                               ["upscale", src, "--out", b, "--models", tiny_models, "--no-tileable"])
    for res, out in zip(results, (a, b)):
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == str(out)
    torus, flat = png(a), png(b)
    assert torus.shape == flat.shape == (96, 160, 3)
    # Same in the interior; only the borders see the difference between wrap-around and edges.
    m = 4 * 8   # the tiny upscaler's context is 7 low-res pixels
    assert np.abs(torus[m:-m, m:-m].astype(int) - flat[m:-m, m:-m].astype(int)).max() <= 1
    assert np.abs(torus.astype(int) - flat.astype(int)).max() > 2
    # Tileable output of a periodic input wraps like its interior: the seam is no larger than typical.
    t = torus.astype(float)
    wrap = np.abs(t[:, 0] - t[:, -1]).mean()
    inner = np.abs(np.diff(t, axis=1)).mean()
    assert wrap < 2 * inner + 1


# batch

def batch_args(out: Path, models: Path, seeds: str = "0-2") -> list:
    return ["batch", "--styles", "brick,grass", "--seeds", seeds, "--size", "256", "--out", out,
            "--models", models, "--quiet"]


def test_batch_writes_resumes_and_repairs(run_cli, tiny_models, tmp_path):
    out = tmp_path / "batch"
    res = run_cli(*batch_args(out, tiny_models))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(out / "manifest.json")
    names = sorted(f"{s}_{seed}_albedo.png" for s in STYLES for seed in range(3))
    assert sorted(p.name for p in out.glob("*.png")) == names
    assert sorted(p.name for p in out.iterdir()) == sorted(names + ["manifest.json"])
    for n in names:
        assert png(out / n).shape == (256, 256, 3)
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["images"]) == 6 and manifest["size"] == 256
    assert sorted(e["files"]["albedo"] for e in manifest["images"]) == names
    assert {(e["style"], e["seed"]) for e in manifest["images"]} == {(s, i) for s in STYLES for i in range(3)}
    assert manifest["training_data"] == {"random init (tests)": "CC0-1.0"}  # the weights' data licences
    stamps = {n: (out / n).stat().st_mtime_ns for n in names}
    first = (out / "brick_1_albedo.png").read_bytes()

    # rerun: nothing to do
    res = run_cli(*batch_args(out, tiny_models))
    assert res.returncode == 0, res.stderr
    assert "resuming: 6 image(s)" in res.stderr
    assert {n: (out / n).stat().st_mtime_ns for n in names} == stamps
    assert len(json.loads((out / "manifest.json").read_text())["images"]) == 6

    # one image lost: only that one is made again, identical to before
    (out / "brick_1_albedo.png").unlink()
    res = run_cli(*batch_args(out, tiny_models))
    assert res.returncode == 0, res.stderr
    assert "resuming: 5 image(s)" in res.stderr
    assert (out / "brick_1_albedo.png").read_bytes() == first
    assert all((out / n).stat().st_mtime_ns == stamps[n] for n in names if n != "brick_1_albedo.png")
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(e["files"]["albedo"] for e in manifest["images"]) == names


def test_batch_survives_sigkill(tiny_models, tmp_path):
    """Kill a batch mid-way: every PNG on disk is complete, and a rerun finishes the job."""
    out = tmp_path / "batch"
    seeds, n = "0-9", 20   # 20 images at 512² take about a second after the first; polling takes 5 ms
    args = ["batch", "--styles", "brick,grass", "--seeds", seeds, "--size", "512", "--out", out,
            "--models", tiny_models, "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "core", *map(str, args)], cwd=REPO, env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob("*.png")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the batch ended before it could be killed"
    written = sorted(out.glob("*.png"))
    assert 1 <= len(written) < n
    for p in written:
        with Image.open(p) as im:
            im.load()   # raises on a truncated file
            assert im.size == (512, 512)
    recorded = 0
    if (out / "manifest.json").exists():   # never half-written
        recorded = len(json.loads((out / "manifest.json").read_text())["images"])
    assert recorded <= len(written)

    res = run_cli_plain(*args)
    assert res.returncode == 0, res.stderr
    if recorded:   # images in the manifest are kept; a PNG written just before the kill is made again
        assert f"resuming: {recorded} image(s)" in res.stderr
    assert len(list(out.glob("*.png"))) == n
    assert not list(out.glob(".*.tmp")), "temporary files from the killed run are cleaned up"
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["images"]) == n
    for p in out.glob("*.png"):
        with Image.open(p) as im:
            im.load()
