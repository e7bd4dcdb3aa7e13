"""Tests for the curation rules in training.data (labels, upscale detection, duplicate groups, splits)
and the DEP-5 licence parser in training.sources. No downloads: images are made with numpy."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data import (GAN_SIDE, VAL_FRACTION, Record, group_duplicates, label, looks_upscaled, process,
                           split)
from training.sources import ufoai_licences
from training_helpers import smooth_noise, write_png


# helpers

def record(origin: str | Path, style: str = "rock", source: str = "test", rid: str = "", group: str = "") -> Record:
    return Record(rid or Path(origin).stem, source, "CC0-1.0", str(origin), style, 0, 0, group=group)


def grey(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


def random_image(seed: int, side: int) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((side, side, 3)) * 255).astype(np.uint8))


# labels

@pytest.mark.parametrize("name, style", [
    ("grass_01.png.cached", "grass"),
    ("cliff_02", "rock"),
    ("brick_wall", "brick"),
    ("medit_city_pavement", "paving"),
    ("rocks_grass_01", "rock"),         # two materials: the earlier rule wins
    ("snow grass 75", "snow"),          # spaces count as underscores
    ("Desert-Sand-Dunes", "sand"),      # so do dashes, and case does not matter
    ("desert_sand_smooth", "sand"),     # "_smooth" is no specular map
    ("temp_dirt_gravel", "rock"),
    ("farmland_brown", "dirt"),
    ("grass_01_norm", None),            # normal map
    ("grass_01_spec", None),            # specular map
    ("tex_base/wall004_nm", None),
    ("concrete001_nm", None),
    ("metal01_sm", None),               # ufoai specular map
    ("trak4_brick1_sm", None),
    ("metal_panel_gm", None),           # ufoai glow map
    ("lava_01", None),
    ("ocean_rocks", None),
    ("carpet002", None),                # no style rule matches
])
def test_label(name, style):
    assert label(name) == style


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

def test_process_writes_both_scales_and_drops_bad_images(tmp_path):
    big = write_png(tmp_path / "src" / "rock_big.png", smooth_noise(0, 300, 600))
    rec, thumb = process((record(big), str(tmp_path / "out")))
    assert isinstance(rec, Record) and (rec.width, rec.height) == (600, 300)
    with Image.open(tmp_path / "out" / "gan" / "_all" / "rock_big.png") as im:
        assert max(im.size) == GAN_SIDE
    with Image.open(tmp_path / "out" / "hr" / "_all" / "rock_big.png") as im:
        assert im.size == (600, 300)
    assert thumb.shape == (256,) and abs(np.linalg.norm(thumb) - 1) < 1e-3  # unit vector: dot = correlation

    tiny = write_png(tmp_path / "src" / "rock_tiny.png", smooth_noise(1, 64, 64))
    flat = write_png(tmp_path / "src" / "rock_flat.png", np.full((300, 300, 3), 0.4))
    bad = tmp_path / "src" / "rock_bad.png"
    bad.write_text("not an image")
    for path, why in ((tiny, "tiny"), (flat, "flat"), (bad, "unreadable")):
        rec, info = process((record(path), str(tmp_path / "out")))
        assert rec is None and str(path) in info and why in info


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
        rec, thumb = process((record(write_png(tmp_path / "src" / f"{name}.png", img)), str(tmp_path / "out")))
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
    assert sum(r.split == "val" for r in rock) <= VAL_FRACTION * len(rock)
    assert all(r.split == "train" for r in recs if r.style == "sand")  # its only group stays in train


# licences

COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: UFO Alien Invasion
Comment:
 base/textures/tex_x/in_a_comment.png is no file entry

Files: *
Copyright: 2002-2014, The UFO:AI Team
License: GPL-3+

Files: debian/*
Copyright: 2013-2020, Someone
License: GPL-2+

Files:
 base/textures/tex_x/a.png
 base/textures/tex_x/a_nm.png
Copyright:
 Nate Wright
 base/textures/tex_x/in_copyright.png
License: CC-BY-3.0

Files: base/textures/tex_y/b.jpg base/maps/m.map
Copyright: Nobody
License: public-domain

License: GPL-2
 On Debian systems, the complete text of the GNU General Public License
 version 2 can be found in "/usr/share/common-licenses/GPL-2".
"""


def test_ufoai_licences_parses_dep5(tmp_path):
    path = tmp_path / "copyright"
    path.write_text(COPYRIGHT, encoding="utf-8")
    per_file, default = ufoai_licences(path)
    assert default == "GPL-3+"  # from `Files: *`
    assert per_file == {
        "textures/tex_x/a.png": "CC-BY-3.0",
        "textures/tex_x/a_nm.png": "CC-BY-3.0",
        "textures/tex_y/b.jpg": "public-domain",
    }
