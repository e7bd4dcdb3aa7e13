"""Issue 18 part 2: `tessera tile` (core.tile, image quilting with minimum-error cuts) and `tessera maps`.

The photos are synthetic: smooth multi-scale colour noise under a lighting gradient, so that they do not
tile (seam ratio about 7) the way a crop of a real photo does not. The CLI runs in-process through
`core.cli.main`, and once as real `python -m core` subprocesses.
"""

from __future__ import annotations

import warnings
from itertools import product
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import cli
from core.api import make_tileable, maps_from_image
from core.imageio import have_exr
from core.metrics import seam_percentile, seam_ratio
from core.tile import MIN_SIDE, _quilt, min_cut
from helpers import regular_file, run_cli_parallel, text_png

# helpers


def photo(h: int = 72, w: int = 96, seed: int = 0) -> np.ndarray:
    """A non-tileable (H, W, 3) uint8 'photo': colour noise at 16, 6 and 2 px, lit from one side."""
    rng = np.random.default_rng(seed)
    x = np.zeros((h, w, 3))
    for cell, amount in ((16, 0.5), (6, 0.3), (2, 0.2)):
        grid = (rng.random((h // cell + 2, w // cell + 2, 3)) * 255).astype(np.uint8)
        big = Image.fromarray(grid).resize((w + 2 * cell, h + 2 * cell), Image.Resampling.BICUBIC)
        x += amount * np.asarray(big)[cell:cell + h, cell:cell + w] / 255
    ys, xs = np.mgrid[0:h, 0:w]
    x += 0.25 * (xs / w)[..., None] - 0.2 * (ys / h)[..., None]
    x = (x - x.min()) / (x.max() - x.min())
    return (x * 255).round().astype(np.uint8)


def periodic(h: int = 48, w: int = 64) -> np.ndarray:
    """A tileable (H, W, 3) uint8 texture: sums of whole periods."""
    ys, xs = np.mgrid[0:h, 0:w]
    chans = [np.sin(2 * np.pi * (xs / w + 2 * ys / h)), np.cos(2 * np.pi * 3 * xs / w) * np.sin(2 * np.pi * ys / h),
             np.sin(2 * np.pi * (4 * ys / h - xs / w) + 1)]
    return (127.5 + 100 * np.stack(chans, axis=-1)).round().astype(np.uint8)


def border_detail(before: np.ndarray, after: np.ndarray, band: int) -> float:
    """Mean |neighbour difference| within `band` px of the borders against the rest, for `after`, divided
    by the same for `before`: 1 when the borders are as detailed as the photo was there."""
    def ratio(img: np.ndarray) -> float:
        x = img.astype(np.float64)
        g = np.zeros(x.shape[:2])
        g[:, :-1] += np.abs(np.diff(x, axis=1)).mean(axis=2)
        g[:-1] += np.abs(np.diff(x, axis=0)).mean(axis=2)
        g, near = g[:-1, :-1], np.ones(g.shape, bool)[:-1, :-1]
        near[band:-band, band:-band] = False
        return float(g[near].mean() / g[~near].mean())
    return ratio(after) / ratio(before)


def opened(path: Path) -> tuple[str, np.ndarray]:
    with Image.open(path) as im:
        im.load()
        return im.mode, np.asarray(im)


def files_under(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


@pytest.fixture
def run(capsys, monkeypatch):
    """run(*argv) → (exit status, stdout, stderr) of `tessera ARGV` in this process."""
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it

    def go(*argv):
        capsys.readouterr()
        with warnings.catch_warnings():
            warnings.simplefilter("always")  # as in a fresh process: no warning hidden as a repeat
            try:
                rc = cli.main([str(a) for a in argv])
            except SystemExit as e:  # argparse's mistakes (one line, see cli.OneLineParser)
                rc = e.code if isinstance(e.code, int) else 1
        out, err = capsys.readouterr()
        return rc, out, err
    return go


# the minimum-error cut

def test_min_cut_is_the_cheapest_connected_path():
    rng = np.random.default_rng(0)
    for _ in range(20):
        cost = rng.random((5, 4))
        best = min(cost[np.arange(5), list(p)].sum() for p in product(range(4), repeat=5)
                   if all(abs(a - b) <= 1 for a, b in zip(p, p[1:])))
        path = min_cut(cost)
        assert all(abs(a - b) <= 1 for a, b in zip(path, path[1:]))
        assert cost[np.arange(5), path].sum() == pytest.approx(best)


def test_min_cut_follows_a_winding_valley():
    cost = np.ones((6, 5))
    valley = [0, 1, 2, 2, 3, 4]
    cost[np.arange(6), valley] = 0
    assert min_cut(cost).tolist() == valley


# make_tileable

def test_tile_wraps_around_like_the_inside():
    """Seam ratio 1 means the wrap-around edge is like any neighbour pair; averaged over photos (a single
    image is noisy), the photos are far off and the results are within 0.85…1.15."""
    photos = [photo(72, 96, seed) for seed in range(8)]
    tiles = [make_tileable(p) for p in photos]
    assert np.mean([seam_ratio(p) for p in photos]) > 4
    assert 0.85 <= np.mean([seam_ratio(t) for t in tiles]) <= 1.15
    assert np.mean([seam_percentile(t) for t in tiles]) < 0.8  # ~1 for a seam, ~0.5 seamless
    # and so does the result tiled 2×2 (its inner edges are the wrap-around edges)
    assert seam_ratio(np.tile(tiles[0], (2, 2, 1))) == pytest.approx(seam_ratio(tiles[0]), abs=0.5)


def test_large_images_are_searched_at_a_reduced_scale(monkeypatch):
    """Above SEARCH_SIDE px the search runs on the image shrunk (here 3×) and is refined at full size."""
    from core import tile

    monkeypatch.setattr(tile, "SEARCH_SIDE", 48)
    photos = [photo(96, 128, seed) for seed in range(4)]
    results = [_quilt(p, patch=None, seed=0) for p in photos]
    assert 0.8 <= np.mean([seam_ratio(out) for out, _ in results]) <= 1.2
    for img, (out, changed) in zip(photos, results):
        assert np.array_equal(out[~changed], img[~changed])


def test_tile_keeps_the_detail_at_the_borders():
    """No blur band or ghosting where the seams were: a cross-fade of two copies halves the contrast of
    the detail there; quilting copies it, so the borders stay as detailed as the photo was."""
    img = photo(96, 128, seed=0)
    assert border_detail(img, make_tileable(img), band=12) > 0.95
    # the measure does see a cross-fade's blur: the image blended into its half-rolled copy near the borders
    faded = img.astype(np.float64)
    for axis in (1, 0):
        n = img.shape[axis]
        ramp = np.clip(np.minimum(np.arange(n), n - 1 - np.arange(n)) / 12, 0, 1)
        w = ramp[None, :, None] if axis == 1 else ramp[:, None, None]
        faded = w * faded + (1 - w) * np.roll(faded, n // 2, axis=axis)
    assert seam_ratio(faded / 255) < 1.5  # it does wrap around
    assert border_detail(img, faded, band=12) < 0.9


def test_tile_keeps_the_size_and_leaves_the_centre_alone():
    img = photo(80, 112, seed=1)
    out, changed = _quilt(img, patch=None, seed=0)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert changed.any() and not changed[20:-20, 28:-28].any()  # only within patch/2 (10 px) of the borders
    assert np.array_equal(out[20:-20, 28:-28], img[20:-20, 28:-28])
    assert not np.array_equal(out, img)


@pytest.mark.parametrize("layout", ["grey16", "grey_alpha", "rgba", "float_grey", "bool"])
def test_tile_keeps_layout_dtype_and_values(layout):
    rgb = photo(64, 64, seed=2)
    grey = rgb.mean(axis=2)
    img = {"grey16": (grey * 257).round().astype(np.uint16),
           "grey_alpha": np.stack([grey.round(), 255 - rgb[..., 0]], axis=-1).astype(np.uint8),
           "rgba": np.concatenate([rgb, rgb[..., 1:2]], axis=-1),
           "float_grey": (grey / 255).astype(np.float32),
           "bool": grey > 128}[layout]
    out = make_tileable(img)
    assert out.shape == img.shape and out.dtype == img.dtype
    pixels = {tuple(np.atleast_1d(v)) for v in img.reshape(64 * 64, -1)}
    assert all(tuple(np.atleast_1d(v)) in pixels for v in out.reshape(64 * 64, -1))  # copied, never mixed
    as_float = (out[..., None] if out.ndim == 2 else out).astype(np.float64)
    assert seam_ratio(as_float / (65535 if out.dtype == np.uint16 else 1)) < 2


def test_tile_is_reproducible_and_the_seed_matters():
    img = photo(64, 80, seed=4)
    a, b, c = make_tileable(img, seed=0), make_tileable(img, seed=0), make_tileable(img, seed=1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_tile_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match=f"at least {MIN_SIDE}×{MIN_SIDE}"):
        make_tileable(photo(31, 96))
    with pytest.raises(ValueError, match="patch 40 does not fit a 96×72 image: use a whole number from 8 to 36"):
        make_tileable(photo(72, 96), patch=40)
    with pytest.raises(ValueError, match="patch 4"):
        make_tileable(photo(72, 96), patch=4)
    with pytest.raises(ValueError, match="seed -1"):
        make_tileable(photo(72, 96), seed=-1)
    with pytest.raises(ValueError, match="dtype int32"):
        make_tileable(photo(72, 96).astype(np.int32))


# maps from an image

def test_maps_from_image_are_as_tileable_as_the_image():
    img = periodic()
    maps = maps_from_image(img)
    assert list(maps) == ["albedo", "normal", "height", "roughness", "ao"]
    assert maps["normal"].shape == (48, 64, 3) and maps["height"].dtype == np.uint16
    rolled = maps_from_image(np.roll(img, (7, 19), axis=(0, 1)))
    for name, m in maps.items():  # up to one rounding step: float sums in another order
        diff = rolled[name].astype(np.int64) - np.roll(m, (7, 19), axis=(0, 1)).astype(np.int64)
        assert np.abs(diff).max() <= (2 if name == "height" else 1), name


def test_maps_from_image_takes_grey_and_a_base_roughness():
    grey16 = (photo(40, 40).mean(axis=2) * 257).astype(np.uint16)
    maps = maps_from_image(grey16, ("albedo", "roughness"), roughness=0.2)
    albedo = maps["albedo"]
    assert albedo.dtype == np.uint8 and albedo.shape == (40, 40, 3)
    assert np.array_equal(albedo[..., 0], albedo[..., 2])
    assert maps["roughness"].mean() < maps_from_image(grey16, ("roughness",), roughness=0.9)["roughness"].mean()
    with pytest.raises(ValueError, match="roughness 1.5 must be a number from 0 to 1"):
        maps_from_image(grey16, roughness=1.5)
    with pytest.raises(ValueError, match="unknown map 'gloss'"):
        maps_from_image(grey16, ("gloss",))


# the commands

def test_cli_tile_writes_a_seamless_png_of_the_same_size(tmp_path, run):
    src = tmp_path / "photo.png"
    Image.fromarray(photo(72, 96)).save(src)
    rc, out, err = run("tile", src, "--out", tmp_path / "tiled.png")
    assert (rc, err) == (0, "")
    assert out.strip() == str(tmp_path / "tiled.png")
    mode, img = opened(tmp_path / "tiled.png")
    assert mode == "RGB" and img.shape == (72, 96, 3)
    assert np.array_equal(img, make_tileable(photo(72, 96)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png", "tiled.png"]  # no temporary files


def test_cli_tile_keeps_a_16bit_grey_png_16bit(tmp_path, run):
    src = tmp_path / "height.png"
    grey = (photo(64, 64).mean(axis=2) * 257).astype(np.uint16)
    Image.frombytes("I;16", (64, 64), grey.astype("<u2").tobytes()).save(src)
    rc, _, err = run("tile", src, "--out", tmp_path / "out.png", "--patch", "12", "--seed", "3")
    assert rc == 0, err
    mode, img = opened(tmp_path / "out.png")
    assert mode.startswith("I;16") and img.shape == (64, 64)
    assert np.array_equal(img, make_tileable(grey, patch=12, seed=3))


def test_cli_maps_writes_the_five_maps(tmp_path, run):
    src = tmp_path / "bark.png"
    Image.fromarray(periodic()).save(src)
    rc, out, err = run("maps", src, "--out", tmp_path / "maps", "--roughness", "0.6")
    assert (rc, err) == (0, "")
    names = ["albedo", "normal", "height", "roughness", "ao"]
    exr = [str(tmp_path / "maps" / "bark_height.exr")] if have_exr() else []  # every file written is named
    assert out.split() == [str(tmp_path / "maps" / f"bark_{m}.png") for m in names] + exr
    expected = maps_from_image(periodic(), roughness=0.6)
    modes = {"albedo": "RGB", "normal": "RGB", "roughness": "L", "ao": "L"}
    for m in names:
        mode, img = opened(tmp_path / "maps" / f"bark_{m}.png")
        assert mode.startswith("I;16") if m == "height" else mode == modes[m], (m, mode)
        assert np.array_equal(img, expected[m]), m


def test_cli_maps_says_when_the_image_does_not_tile_and_tile_fixes_it(tmp_path, run):
    src = tmp_path / "wall.png"
    Image.fromarray(photo(72, 96)).save(src)
    rc, _, err = run("maps", src, "--out", tmp_path / "plain", "--maps", "albedo,normal")
    assert rc == 0
    assert err.count("\n") == 1 and err.startswith("warning: ") and "--tile" in err, err
    _, plain = opened(tmp_path / "plain" / "wall_albedo.png")
    rc, _, err = run("maps", src, "--out", tmp_path / "tiled", "--maps", "albedo,normal", "--tile")
    assert (rc, err) == (0, "")
    _, albedo = opened(tmp_path / "tiled" / "wall_albedo.png")
    assert np.array_equal(albedo, make_tileable(photo(72, 96)))
    _, normal = opened(tmp_path / "tiled" / "wall_normal.png")
    assert seam_ratio(albedo) < 1.5 < 3 < seam_ratio(plain)
    assert seam_ratio(normal) < 1.5


def _png(d: Path, h: int = 48, w: int = 64) -> Path:
    Image.fromarray(photo(h, w)).save(d / "in.png")
    return d / "in.png"




BAD = {
    "tile missing input": (lambda d: ["tile", d / "missing.png", "--out", d / "o.png"], "missing.png: no such file"),
    "tile not an image": (lambda d: ["tile", text_png(d), "--out", d / "o.png"], "not a readable image"),
    "tile too small": (lambda d: ["tile", _png(d, 20, 64), "--out", d / "o.png"],
                       "64×20 px is too small to make tileable: it needs at least 32×32 px"),
    "tile patch too big": (lambda d: ["tile", _png(d), "--out", d / "o.png", "--patch", "30"],
                           "patch 30 does not fit a 64×48 image: use a whole number from 8 to 24"),
    "tile negative seed": (lambda d: ["tile", _png(d), "--out", d / "o.png", "--seed", "-2"], "seed -2"),
    "tile output not .png": (lambda d: ["tile", _png(d), "--out", d / "o.jpg"], "output must be a .png"),
    "tile output is a folder": (lambda d: ["tile", _png(d), "--out", d], "is a folder, expected a file name"),
    "tile output parent is a file": (lambda d: ["tile", _png(d), "--out", regular_file(d) / "o.png"], "afile"),
    "maps missing input": (lambda d: ["maps", d / "missing.png", "--out", d / "m"], "missing.png: no such file"),
    "maps not an image": (lambda d: ["maps", text_png(d), "--out", d / "m"], "not a readable image"),
    "maps unknown map": (lambda d: ["maps", _png(d), "--out", d / "m", "--maps", "albedo,gloss"],
                         "unknown map 'gloss': choose from albedo, normal, height, roughness, ao"),
    "maps roughness": (lambda d: ["maps", _png(d), "--out", d / "m", "--roughness", "1.5"],
                       "--roughness 1.5 is out of range: use a number from 0 to 1"),
    "maps normal strength": (lambda d: ["maps", _png(d), "--out", d / "m", "--normal-strength", "nan"],
                             "--normal-strength nan must be a finite number ≥ 0"),
    "maps out is a file": (lambda d: ["maps", _png(d), "--out", regular_file(d)], "is a file, expected a folder"),
    "maps out named as an image": (lambda d: ["maps", _png(d), "--out", d / "wall.PNG"],
                                   "wall.PNG is the folder the maps go into (<name>_<map>.png each)"),
    "maps takes no models": (lambda d: ["maps", _png(d), "--out", d / "m", "--models", d],
                             "unrecognized arguments: --models"),
}
if Path("/proc/self").is_dir():  # Linux: a folder no one can create files in, root included
    BAD["tile output in /proc"] = (lambda d: ["tile", _png(d), "--out", "/proc/o.png"], "cannot write to /proc")
    BAD["maps out in /proc"] = (lambda d: ["maps", _png(d), "--out", "/proc/maps"], "cannot write to /proc")


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, tmp_path, run):
    argv = BAD[case][0](tmp_path)
    before = files_under(tmp_path)
    rc, out, err = run(*argv)
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert BAD[case][1] in err, err
    assert out == ""
    assert files_under(tmp_path) == before, "a failed command must not write anything"


def test_tile_and_maps_as_commands(tmp_path):
    src = tmp_path / "photo.png"
    Image.fromarray(photo(64, 64)).save(src)
    tile, small = run_cli_parallel(["tile", src, "--out", tmp_path / "t.png"],
                                   ["maps", _png(tmp_path, 16, 16), "--out", tmp_path / "m", "--maps", "normal,ao",
                                    "--tile"])
    assert tile.returncode == 0, tile.stderr
    assert tile.stdout.strip() == str(tmp_path / "t.png")
    assert np.array_equal(opened(tmp_path / "t.png")[1], make_tileable(photo(64, 64)))
    assert small.returncode == 2 and small.stderr.count("\n") == 1 and "Traceback" not in small.stderr
    assert "in.png: 16×16 px is too small to make tileable: it needs at least 32×32 px" in small.stderr
    assert not (tmp_path / "m").exists()
