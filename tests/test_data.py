"""Tests for the curation in training.data (manifest, stationarity, upscale detection, duplicate groups,
splits) and the manifest reader in training.sources. No downloads: images are made with numpy."""

from __future__ import annotations

import base64
import copy
import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data import (DXT_PACKAGES, GAN_SIDE, STATIONARITY_MEAN, STATIONARITY_STD, STYLES, UNCURATED, VAL_FRACTION,
                           VAL_MIN, Record, group_duplicates, looks_upscaled, nonstationarity, process, records, split)
from training.sources import Entry, read_bytes, read_manifest
from training_helpers import smooth_noise, stripes, write_png


# helpers

def record(origin: str | Path, style: str = "rock", source: str = "test", rid: str = "", group: str = "") -> Record:
    """A record of an image at `origin`, a path relative to the package's root (tmp_path/src in these tests)."""
    return Record(rid or Path(origin).stem, source, "CC0-1.0", str(origin), style, 0, 0, group=group)


def run(tmp_path: Path, rec: Record):
    return process((rec, str(tmp_path / "out"), str(tmp_path / "src")))


def grey(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


def random_image(seed: int, side: int) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((side, side, 3)) * 255).astype(np.uint8))


# the manifest

MANIFEST = """\
# a comment
package\tpath\tstyle\tlicence
pkg-a\tusr/share/a/rock.png\trock\tGPL-2+
pkg-b\tdata.pk3!textures/bark.jpg\tbark\tCC-BY-3.0
"""


def test_manifest_rows_and_archive_members(tmp_path):
    path = tmp_path / "manifest.tsv"
    path.write_text(MANIFEST, encoding="utf-8")
    rock, bark = read_manifest(path)
    assert rock == Entry("pkg-a", "usr/share/a/rock.png", "rock", "GPL-2+") and rock.archive is None
    assert bark.archive == "data.pk3" and bark.licence == "CC-BY-3.0"
    assert [r.style for r in records([rock, bark], styles=("rock",))] == ["rock"]  # other styles wait


@pytest.mark.parametrize("row, match", [
    ("supertuxkart-data\tx.png\trock\tGPL-2+", "reserved as the independent test set"),
    ("pkg\tx.png\trock\t", "needs package, path, style and licence"),
])
def test_manifest_refuses_reserved_packages_and_short_rows(tmp_path, row, match):
    path = tmp_path / "manifest.tsv"
    path.write_text(MANIFEST + row + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        read_manifest(path)


def test_shipped_manifest_is_well_formed_and_leaves_the_test_set_out():
    entries = read_manifest()
    assert len(entries) > 1500 and len({(e.package, e.path) for e in entries}) == len(entries)
    assert not any("supertuxkart" in e.package or "supertuxkart" in e.path for e in entries)
    assert {e.style for e in entries} <= set(STYLES) | set(UNCURATED)  # a mistyped label would silently drop images


def test_images_are_read_from_zip_members(tmp_path):
    write_png(tmp_path / "tex.png", smooth_noise(0, 32, 32))
    with zipfile.ZipFile(tmp_path / "data.pk3", "w") as zf:
        zf.write(tmp_path / "tex.png", "textures/tex.png")
    data = read_bytes(Entry("p", "data.pk3!textures/tex.png", "rock", "CC0-1.0"), tmp_path)
    assert data == (tmp_path / "tex.png").read_bytes()


# An 8×8 KTX2 texture as warzone2100-data ships them (UASTC, zstd supercompression, no alpha): quadrants red,
# green / blue, grey. Encoded from raw pixels by Basis Universal 2.10 (the alktx2 wheel); 244 bytes.
KTX2_QUADRANTS = base64.b64decode(
    "q0tUWCAyMLsNChoKAAAAAAEAAAAIAAAACAAAAAAAAAAAAAAAAQAAAAEAAAACAAAAaAAAACwAAACUAAAAJAAAAAAAAAAAAAAAAAAAAAAAAAC4"
    "AAAAAAAAADwAAAAAAAAAQAAAAAAAAAAsAAAAAAAAAAIAKACmAQIAAwMAABAAAAAAAAAAAAB/AAAAAAAAAAAA/////x8AAABLVFh3cml0ZXIA"
    "QmFzaXMgVW5pdmVyc2FsIDIuMTAAACi1L/0gQJ0BAJQCFxkF5T/IxgAXBRnlPzDZABcFBfk/MCYDAJebm/sfc84BAAAAAAAAAAADEAD5EE5w"
    "AQ==")


def test_ktx2_textures_are_read_as_png(tmp_path):
    pytest.importorskip("opengl_basisu")
    with zipfile.ZipFile(tmp_path / "base.wz", "w") as zf:
        zf.writestr("texpages/page.ktx2", KTX2_QUADRANTS)
    data = read_bytes(Entry("p", "base.wz!texpages/page.ktx2", "rock", "GPL-2+"), tmp_path)
    with Image.open(io.BytesIO(data)) as im:
        assert (im.format, im.mode, im.size) == ("PNG", "RGB", (8, 8))
        px = np.asarray(im).astype(int)
    for (y, x), rgb in {(0, 0): (200, 40, 40), (0, 7): (40, 200, 40), (7, 0): (40, 40, 200),
                        (7, 7): (220, 220, 220)}.items():
        assert np.abs(px[y, x] - rgb).max() <= 8
    # the curation reads it the same way: this one is dropped only for its size
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "page.ktx2").write_bytes(KTX2_QUADRANTS)
    rec, why = run(tmp_path, record("page.ktx2"))
    assert rec is None and "tiny (8×8)" in why


def test_ktx2_needs_its_decoder_and_an_intact_file(tmp_path, monkeypatch):
    pytest.importorskip("opengl_basisu")
    (tmp_path / "cut.ktx2").write_bytes(KTX2_QUADRANTS[:100])
    with pytest.raises(ValueError):
        read_bytes(Entry("p", "cut.ktx2", "rock", "GPL-2+"), tmp_path)
    (tmp_path / "page.ktx2").write_bytes(KTX2_QUADRANTS)
    monkeypatch.setitem(sys.modules, "opengl_basisu", None)  # as where it is not installed
    with pytest.raises(RuntimeError, match="page.ktx2: reading KTX2 needs the opengl-basisu package"):
        read_bytes(Entry("p", "page.ktx2", "rock", "GPL-2+"), tmp_path)


# stationarity

def test_stationary_textures_score_low_and_bands_or_objects_high():
    noise, lines = smooth_noise(0, 256, 256), stripes(256, 256, 16)
    band = noise.copy()
    band[200:] = [0.9, 0.1, 0.1]                 # a red band along the bottom
    spot = noise.copy()
    spot[10:120, 10:120] = [0.8, 0.7, 0.1]       # a yellow object filling most of one quadrant
    flat_band = noise.copy()
    flat_band[:, :64] = flat_band[:, :64].mean(axis=(0, 1))  # one side without any detail
    for img in (noise, lines):
        assert max(nonstationarity(img.astype(np.float32))) < 0.5
    assert nonstationarity(band.astype(np.float32))[0] > STATIONARITY_MEAN
    assert nonstationarity(spot.astype(np.float32))[0] > STATIONARITY_MEAN
    assert nonstationarity(flat_band.astype(np.float32))[1] > STATIONARITY_STD


# upscale detection

@pytest.mark.parametrize("resample", [Image.Resampling.NEAREST, Image.Resampling.BILINEAR,
                                      Image.Resampling.BICUBIC], ids=["nearest", "bilinear", "bicubic"])
def test_looks_upscaled_detects_4x_blowups(resample):
    small = random_image(0, 64)
    assert looks_upscaled(grey(small.resize((256, 256), resample)))


@pytest.mark.parametrize("img", [
    pytest.param(lambda: random_image(1, 256), id="noise"),
    pytest.param(lambda: Image.fromarray((smooth_noise(2, 256, 256) * 255).astype(np.uint8)), id="smooth"),
    pytest.param(lambda: random_image(3, 1024).resize((256, 256), Image.Resampling.LANCZOS), id="downscaled"),
])
def test_looks_upscaled_leaves_native_images_alone(img):
    assert not looks_upscaled(grey(img()))


# processing one image

def test_process_writes_every_scale_and_drops_bad_images(tmp_path):
    write_png(tmp_path / "src" / "rock_big.png", smooth_noise(0, 300, 600))
    rec, thumb = run(tmp_path, record("rock_big.png"))
    assert isinstance(rec, Record) and (rec.width, rec.height) == (600, 300)
    with Image.open(tmp_path / "out" / "gan" / "_all" / "rock_big.png") as im:
        assert max(im.size) == GAN_SIDE
    with Image.open(tmp_path / "out" / "hr" / "_all" / "rock_big.png") as im:
        assert im.size == (600, 300)
    assert not (tmp_path / "out" / "detail" / "_all" / "rock_big.png").exists()  # < 1024 px: no detail target
    assert rec.stationary and rec.parts_mean < 0.5
    assert thumb.shape == (256,) and abs(np.linalg.norm(thumb) - 1) < 1e-3  # unit vector: dot = correlation

    write_png(tmp_path / "src" / "rock_huge.png", smooth_noise(0, 1200, 1200))
    rec, _ = run(tmp_path, record("rock_huge.png"))
    with Image.open(tmp_path / "out" / "detail" / "_all" / "rock_huge.png") as im:
        assert im.size == (1024, 1024)

    dxt = record("rock_huge.png", source=DXT_PACKAGES[0], rid="rock_dxt")  # DXT blocks at 1200 px: no detail
    run(tmp_path, dxt)
    assert (tmp_path / "out" / "gan" / "_all" / "rock_dxt.png").exists()
    assert not (tmp_path / "out" / "detail" / "_all" / "rock_dxt.png").exists()

    write_png(tmp_path / "src" / "rock_tiny.png", smooth_noise(1, 64, 64))
    write_png(tmp_path / "src" / "rock_flat.png", np.full((300, 300, 3), 0.4))
    (tmp_path / "src" / "rock_bad.png").write_text("not an image")
    for name, why in (("rock_tiny.png", "tiny"), ("rock_flat.png", "flat"), ("rock_bad.png", "unreadable")):
        rec, info = run(tmp_path, record(name))
        assert rec is None and name in info and why in info


# duplicate groups

def test_group_duplicates_joins_recolours_and_keeps_others_apart(tmp_path):
    t = smooth_noise(5, 256, 256).mean(axis=2, keepdims=True)
    files = {
        "cliff_rough": t * np.array([0.9, 0.6, 0.3]),                  # orange
        "boulder_field": 0.1 + 0.8 * t * np.array([0.2, 0.5, 1.0]),    # the same structure in blue
        "pebbles": smooth_noise(6, 256, 256),                          # unrelated
    }
    recs, thumbs = [], []
    for name, img in files.items():
        write_png(tmp_path / "src" / f"{name}.png", img)
        rec, thumb = run(tmp_path, record(f"{name}.png"))
        recs.append(rec)
        thumbs.append(thumb)
    group_duplicates(recs, np.stack(thumbs))
    original, recolour, unrelated = recs
    assert original.group == recolour.group and original.group in (original.id, recolour.id)
    assert unrelated.group == unrelated.id


def test_group_duplicates_joins_name_families_of_one_source_and_style():
    recs = [record("a/wall004_blue.png"), record("a/wall004_red_dark.png"), record("a/wall005.png"),
            record("b/wall004.png", source="other"), record("a/wall004_c.png", style="brick")]
    thumbs = np.eye(len(recs), 256)  # uncorrelated pictures: only the names can join them
    group_duplicates(recs, thumbs)
    assert recs[0].group == recs[1].group
    assert len({r.group for r in recs}) == 4


# train / validation split

def make_groups(style: str, sizes: list[int]) -> list[Record]:
    return [record(f"{style}/g{g}_{i}.png", style=style, rid=f"{style}_{g}_{i}", group=f"{style}_{g}")
            for g, n in enumerate(sizes) for i in range(n)]


def test_split_keeps_groups_whole_and_gives_each_style_validation():
    recs = make_groups("rock", [5] + [1] * 9) + make_groups("snow", [5, 5]) + make_groups("sand", [3])
    again = copy.deepcopy(recs)
    split(recs)
    split(again)
    assert [r.split for r in recs] == [r.split for r in again]  # deterministic

    groups: dict[str, set[str]] = {}
    for r in recs:
        groups.setdefault(r.group, set()).add(r.split)
    assert all(len(s) == 1 for s in groups.values()), "a group was split across train and val"

    for style in ("rock", "snow"):  # more than one group: at least one in each split
        splits = [r.split for r in recs if r.style == style]
        assert "val" in splits and "train" in splits
    rock = [r for r in recs if r.style == "rock"]
    assert sum(r.split == "val" for r in rock) <= len(rock) / 2  # never more than half to validation
    assert all(r.split == "train" for r in recs if r.style == "sand")  # its only group stays in train


def test_a_group_with_two_styles_goes_one_way_for_both():
    recs = make_groups("grass", [1] * 30) + make_groups("mud", [1] * 100)
    for r in recs[:30]:  # every grass photograph is also shipped labelled as mud
        recs.append(record(f"mud/{r.id}.png", style="mud", rid=f"mud_{r.id}", group=r.group))
    split(recs)
    splits: dict[str, set[str]] = {}
    for r in recs:
        splits.setdefault(r.group, set()).add(r.split)
    assert all(len(v) == 1 for v in splits.values())
    assert all(sum(r.split == "val" for r in recs if r.style == s) >= VAL_MIN for s in ("grass", "mud"))


def test_split_holds_out_at_least_val_min_images_where_the_style_allows():
    recs = make_groups("grass", [1] * 200) + make_groups("mud", [1] * 30) + make_groups("ice", [1] * 10)
    split(recs)
    val = {s: sum(r.split == "val" for r in recs if r.style == s) for s in ("grass", "mud", "ice")}
    assert val["grass"] == 24    # 12 %: the first group that reaches it ends the choice
    assert val["mud"] == VAL_MIN     # 12 % would be 4: too few for the realism test
    assert val["ice"] == 5           # half of 10, no more


# the whole curation, offline: the package is already unpacked, so nothing is downloaded

def test_curate_writes_split_style_folders_and_an_index(tmp_path):
    import json

    from training.data import curate

    root = tmp_path / "cache" / "pkg-a"
    rows = ["package\tpath\tstyle\tlicence"]
    for i in range(6):
        write_png(root / "tex" / f"rock{i}.png", smooth_noise(100 + i, 300, 300))
        rows.append(f"pkg-a\ttex/rock{i}.png\trock\tGPL-2+")
    write_png(tmp_path / "mud.png", smooth_noise(7, 1100, 1100))
    with zipfile.ZipFile(root / "data.pk3", "w") as zf:
        zf.write(tmp_path / "mud.png", "textures/mud.png")
    rows += ["pkg-a\tdata.pk3!textures/mud.png\tmud\tCC0-1.0", "pkg-a\ttex/bark.png\tbark\tGPL-2+"]  # bark: not curated
    (root / "usr/share/doc/pkg-a").mkdir(parents=True)
    (root / "usr/share/doc/pkg-a/copyright").write_text("Files: *\nLicense: GPL-2+\n")
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")

    kept = curate(tmp_path / "cache", tmp_path / "out", workers=1, manifest=manifest)
    assert sorted(r.style for r in kept) == ["mud"] + ["rock"] * 6
    out = tmp_path / "out"
    assert len(list((out / "gan" / "val" / "rock").glob("*.png"))) == 3  # half of six: 12 are not there
    assert len(list((out / "gan" / "train" / "rock").glob("*.png"))) == 3
    assert len(list(out.glob("detail/*/mud/*.png"))) == 1  # the only image ≥ 1024 px
    index = json.loads((out / "index.json").read_text())
    assert index["licences"] == {"pkg-a": "CC0-1.0, GPL-2+"} and len(index["records"]) == 7
