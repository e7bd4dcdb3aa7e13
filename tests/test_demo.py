"""The demo's sheets: labels stay inside their cells."""

from __future__ import annotations

import numpy as np

from core.demo import contact_sheet, pbr_sheet

BACKGROUND = (24, 24, 24)


def test_a_long_style_name_stays_inside_its_cell_on_both_sheets():
    """The label of a long name (a user's style) is shortened to its cell; before, it ran into the next cell."""
    img = np.full((32, 32, 3), 200, np.uint8)
    long = "forest_floor_with_moss_and_leaves_in_autumn"
    sheet = contact_sheet({long: img, "b": img}, cell=96, columns=2)
    pad, label_h = 8, 22
    gap = sheet[:label_h, pad + 96:2 * pad + 96]  # between the two cells, along the labels
    assert (gap == BACKGROUND).all()
    assert (sheet[3:label_h, pad:pad + 96] != BACKGROUND).any()  # the label is drawn
    maps = {"albedo": img, "normal": img}
    sheet = pbr_sheet({long: maps}, cell=64)
    assert (sheet[24:, 88:90] == BACKGROUND).all()  # the label column (90 px) ends before the first map
