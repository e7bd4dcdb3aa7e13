"""The torus generator: shapes, the exact tileability identities, integer wave numbers, seeds, mixing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core import noise as core_noise
from core.generator import GeneratorConfig, TextureGenerator, waves

TOL = 1e-5


# helpers

def one_hot(i: int, n: int = 2, batch: int = 1) -> torch.Tensor:
    w = torch.zeros(batch, n)
    w[:, i] = 1.0
    return w


def noise(model: TextureGenerator, cells: tuple[int, int], seed: int = 0, style: int = 0):
    s = model.embed(one_hot(style, model.cfg.styles))
    return model.make_noise(s, cells, torch.Generator().manual_seed(seed)), s


# tests

def test_config_stride_and_noise_dim():
    cfg = GeneratorConfig(styles=2, widths=(16, 8, 8))
    assert cfg.stride == 4
    assert GeneratorConfig(widths=(8, 8, 8, 8)).stride == 8
    assert cfg.head_noise_dim == cfg.local_dim + cfg.global_dim + cfg.periodic_dim
    assert cfg.noise_dim == cfg.head_noise_dim + 4 + 16  # a detail map per ×2 level, pixel-unshuffled
    with pytest.raises(AssertionError, match="upsampling"):
        GeneratorConfig(widths=(8,))
    fine = GeneratorConfig(styles=2, widths=(16, 8, 8, 8), fine_periodic_dim=3)
    assert fine.fine_level == 2  # the level before the last
    assert fine.noise_dim == fine.head_noise_dim + 4 + 16 + 64 + 3 * 16  # fine waves, pixel-unshuffled


@pytest.mark.parametrize("n", [1, 4])
def test_waves_close_on_the_torus_at_any_sampling(n):
    """Continuing each wave one tile further equals wrapping around, also n samples per cell."""
    freq = torch.tensor([[[0.37, -0.21], [1.3, 0.6], [-2.2, 1.05]]], dtype=torch.float64)  # cycles per cell
    phase = torch.rand(1, 3, 1, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 * math.pi
    h, w = 5, 7
    one = waves(freq, (h, w), n, phase)
    assert one.shape == (1, 3, h * n, w * n)
    # the same wave numbers on a grid twice as wide and high is the tile repeated 2×2
    k = (freq * torch.tensor([w, h])).round() / torch.tensor([w, h])  # the rounded frequencies
    two = waves(k, (2 * h, 2 * w), n, phase)
    assert (two - one.repeat(1, 1, 2, 2)).abs().max() < TOL


def test_fine_waves_start_silent_so_an_extended_model_draws_what_it_drew():
    """A generator extended with fine waves (new layers at their initial values) gives the same image
    for the same seed as the one it was extended from: the fine amplitude starts at zero and the
    extra phases are drawn after every old draw."""
    base = TextureGenerator(GeneratorConfig(styles=2, style_dim=8, local_dim=4, global_dim=4, periodic_dim=4,
                                            widths=(16, 8, 8, 8))).eval()
    ext = TextureGenerator(GeneratorConfig(**{**base.cfg.to_dict(), "fine_periodic_dim": 3})).eval()
    missing, unexpected = ext.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("fine_") for k in missing)
    with torch.no_grad():
        a = base(one_hot(1), (4, 5), torch.Generator().manual_seed(3))
        b = ext(one_hot(1), (4, 5), torch.Generator().manual_seed(3))
    assert (a - b).abs().max() == 0


def test_layouts_start_silent_and_are_written_only_when_there():
    """A generator extended with layouts draws what it drew (amplitudes start at zero, the lattices come
    from the seed's own stream); a config without layouts is written as before (no "layouts" key)."""
    base = TextureGenerator(GeneratorConfig(styles=2, style_dim=8, local_dim=4, global_dim=4, periodic_dim=4,
                                            widths=(16, 8, 8, 8), fine_periodic_dim=2)).eval()
    assert "layouts" not in base.cfg.to_dict()
    ext = TextureGenerator(GeneratorConfig(**{**base.cfg.to_dict(), "layouts": 3})).eval()
    assert ext.cfg.to_dict()["layouts"] == 3 and ext.cfg.noise_dim == base.cfg.noise_dim + 9 * 16
    missing, unexpected = ext.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and sorted(missing) == ["layout_amp.bias", "layout_amp.weight", "layout_proj.weight"]
    with torch.no_grad():
        for draw in (lambda: torch.Generator().manual_seed(3), lambda: [3]):  # training's draws, a seed's
            assert torch.equal(base(one_hot(1), (4, 5), draw()), ext(one_hot(1), (4, 5), draw()))
        ext.layout_amp.bias.fill_(1.0)  # now the lattices show
        assert (base(one_hot(1), (4, 5), [3]) - ext(one_hot(1), (4, 5), [3])).abs().max() > 1e-2
    with pytest.raises(AssertionError, match="layouts 4"):
        GeneratorConfig(layouts=4)


def test_layout_styles_hide_the_layouts_from_the_other_styles():
    """With `layout_styles` only those styles see the lattices: another style draws exactly what it draws
    with its layout amplitude zeroed, however large the amplitude it learned (without the gate it drew the
    lattices' per-unit blocks: metal and rust did); a mix sees them by its share. The config writes the field
    only when set, and the graph (core.export_onnx) is the same with it or without."""
    from core import weights

    base = GeneratorConfig(styles=2, style_dim=8, local_dim=4, global_dim=4, periodic_dim=4, widths=(16, 8, 8),
                           fine_periodic_dim=2, layouts=2)
    cfg = GeneratorConfig(**{**base.to_dict(), "layout_styles": [0]})  # as read back from a file's JSON
    assert cfg.layout_styles == (0,) and cfg.to_dict()["layout_styles"] == (0,) and "layout_styles" not in base.to_dict()
    assert weights.graph_name("generator", cfg.to_dict()) == weights.graph_name("generator", base.to_dict())
    torch.manual_seed(0)
    gated = TextureGenerator(cfg).eval()
    with torch.no_grad():
        gated.layout_amp.bias.fill_(1.0)
        silent = TextureGenerator(cfg).eval()
        silent.load_state_dict(gated.state_dict())
        silent.layout_amp.bias.zero_()
        for draw in (lambda: torch.Generator().manual_seed(3), lambda: [3]):  # training's draws, a seed's
            assert torch.equal(gated(one_hot(1), (4, 5), draw()), silent(one_hot(1), (4, 5), draw()))
            assert (gated(one_hot(0), (4, 5), draw()) - silent(one_hot(0), (4, 5), draw())).abs().max() > 1e-2
        mix = torch.tensor([[0.25, 0.75], [1.0, 0.0]])
        gate = gated.layout_gate(mix)
        assert gate.tolist() == [0.25, 1.0] and cfg.layout_gate([0.25, 0.75]) == 0.25
        s = gated.embed(mix)
        z = gated.make_noise(s, (4, 5), [3, 3], gate)
        layout = F.pixel_unshuffle(torch.from_numpy(core_noise.layout((4, 5), 2, 2, 3)), 2)
        assert torch.equal(z[0, -layout.shape[0]:], 0.25 * layout) and torch.equal(z[1, -layout.shape[0]:], layout)
        with pytest.raises(AssertionError, match="layout_gate"):
            gated.make_noise(s, (4, 5), [3, 3])
    nobody = GeneratorConfig(**{**base.to_dict(), "layout_styles": []})  # a style learned from grass: none
    assert nobody.layout_gate([1.0, 0.0]) == 0.0 and base.layout_gate([1.0, 0.0]) == 1.0
    for bad, match in (({"layout_styles": [2]}, "layout_styles"), ({"layout_styles": [1, 0]}, "layout_styles"),
                       ({"layouts": 0, "layout_styles": [0]}, "without layouts")):
        with pytest.raises(AssertionError, match=match):
            GeneratorConfig(**{**base.to_dict(), **bad})


@pytest.mark.parametrize("lat", core_noise.LATTICES, ids=lambda lat: lat.name)
@pytest.mark.parametrize("cells", [(2, 3), (8, 8), (16, 11)])
def test_lattices_close_on_the_torus(lat, cells):
    """Whole numbers of rows and of units per row fit the tile: every pixel row holds as many unit values
    as units, the wrap included (a lattice cut at the border would hold one more); rows alternate by half a
    unit in running bond across the wrap as well (an even number of rows); stack bond has no shift."""
    n = 4
    for seed in range(4):
        v, u, value = core_noise.lattice(lat, cells, n, np.random.default_rng(seed))
        h, w = cells
        rows = round(v[-1] + (v[1] - v[0]) - v[0])
        units = round(u[0, -1] + (u[0, 1] - u[0, 0]) - u[0, 0])
        assert v.shape == (h * n,) and u.shape == value.shape == (h * n, w * n)
        assert -1 <= value.min() and value.max() < 1
        runs = (value != np.roll(value, 1, axis=1)).sum(axis=1)  # unit boundaries along each pixel row
        assert (runs == (units if units > 1 else 0)).all(), (runs, units)
        row = np.floor(v).astype(int) % rows
        shift = (u[:, 0] - u[0, 0]) % 1
        new_row = row != np.roll(row, -1)  # pixel row y and the next (the last and the first: the wrap)
        step = (np.roll(shift, -1) - shift) % 1
        assert new_row.sum() == (rows if rows > 1 else 0) and np.allclose(step[~new_row] % 1 * (1 - step[~new_row] % 1), 0)
        if lat.bond == "running":
            assert rows % 2 == 0
            np.testing.assert_allclose(step[new_row], 0.5, atol=1e-9)
        elif lat.bond == "stack":
            assert np.allclose(step * (1 - step), 0, atol=1e-9)


def test_layout_channels_and_seeds():
    """`layout`: cos of the row and unit coordinates and a value per unit, float32 in [-1, 1]; the same seed
    gives the same lattices, another seed others."""
    a = core_noise.layout((4, 6), 8, 3, seed=1)
    assert a.shape == (9, 32, 48) and a.dtype == np.float32 and np.abs(a).max() <= 1
    assert np.array_equal(a, core_noise.layout((4, 6), 8, 3, seed=1))
    assert not np.array_equal(a, core_noise.layout((4, 6), 8, 3, seed=2))
    assert core_noise.layout((4, 6), 8, 0, seed=1).shape == (0, 32, 48)


@pytest.mark.parametrize("cells", [(4, 4), (3, 5), (6, 2)])
def test_output_shapes(gen_model, cells):
    model = gen_model
    h, w = cells
    weights = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.3, 0.7]])
    g = torch.Generator().manual_seed(0)
    z = model.make_noise(model.embed(weights), cells, g)
    assert z.shape == (3, model.cfg.noise_dim, h, w)
    out = model(weights, cells, torch.Generator().manual_seed(0))
    assert out.shape == (3, 3, h * 4, w * 4)
    assert out.dtype == torch.float32
    assert out.abs().max() <= 1.0 and torch.isfinite(out).all()


@pytest.mark.parametrize("shift", [(1, 0), (0, 1), (2, 3), (-1, 4)])
def test_roll_equivariance(gen_model, shift):
    """Rolling the noise by k cells rolls the image by k·stride pixels, on both axes, non-square grid."""
    model = gen_model
    stride = model.cfg.stride
    z, s = noise(model, (5, 7), seed=1)
    # Fully random noise (not just the periodic part) so every channel is exercised.
    z = torch.randn(z.shape, generator=torch.Generator().manual_seed(2))
    ky, kx = shift
    out = model.synthesize(z, s)
    rolled = model.synthesize(torch.roll(z, shifts=(ky, kx), dims=(2, 3)), s)
    expect = torch.roll(out, shifts=(ky * stride, kx * stride), dims=(2, 3))
    assert (rolled - expect).abs().max() < TOL
    # and the shift is visible at all: the image is not (trivially) shift-invariant
    assert (rolled - out).abs().max() > 1e-2


def test_tiling_noise_tiles_image(gen_model):
    """synthesize(tile(z)) == tile(synthesize(z)) for a 2×2 tiling."""
    model = gen_model
    z, s = noise(model, (3, 5), seed=3)
    out = model.synthesize(z, s)
    big = model.synthesize(z.repeat(1, 1, 2, 2), s)
    assert big.shape == (1, 3, 2 * out.shape[2], 2 * out.shape[3])
    assert (big - out.repeat(1, 1, 2, 2)).abs().max() < TOL


@pytest.mark.parametrize("cells", [(5, 7), (8, 8), (6, 11), (16, 9)])
def test_periodic_channels_have_integer_wave_numbers(gen_model, cells):
    """Each periodic channel is an exact sinusoid on the torus: along every row (column) its DFT has all
    its energy in one ±bin pair, at the rounded wave number."""
    model = gen_model
    cfg, (h, w) = model.cfg, cells
    with torch.no_grad():  # frequencies spread over (-0.5, 0.5) cycles per cell, mostly non-integer per tile
        model.wave.weight.zero_()
        model.wave.bias.copy_(torch.tensor([0.37, -0.21, 0.13, 0.44, -0.31, 0.06, 0.23, -0.42]))
    s = model.embed(one_hot(0))
    phase = torch.rand(1, cfg.periodic_dim, 1, 1, generator=torch.Generator().manual_seed(0)) * 2 * math.pi
    per_cell = waves(model.wave(s).view(1, cfg.periodic_dim, 2), (h, w), 1, phase)[0].double().numpy()  # (P, H, W)
    freq = model.wave.bias.view(cfg.periodic_dim, 2).double().numpy()
    raw = freq * np.array([w, h])
    assert np.abs(raw - raw.round()).max() > 0.1, "test needs non-integer raw wave numbers to mean anything"
    for c in range(cfg.periodic_dim):
        for axis, n, k in ((1, w, round(raw[c, 0])), (0, h, round(raw[c, 1]))):
            power = np.abs(np.fft.fft(per_cell[c], axis=axis)) ** 2
            power = power if axis == 1 else power.T                   # (lines, bins)
            bins = {k % n, (-k) % n}
            inside = power[:, sorted(bins)].sum(axis=1)
            total = power.sum(axis=1)
            assert np.all(inside >= (1 - 1e-9) * total), f"channel {c} axis {axis}: energy leaks from bin {k}"
    # The same noise made through make_noise: the periodic channels close the head's noise.
    z = model.make_noise(s, (h, w), torch.Generator().manual_seed(0))
    assert z.shape[1] == cfg.noise_dim
    per = z[0, cfg.head_noise_dim - cfg.periodic_dim:cfg.head_noise_dim]
    assert per.abs().max() <= 1.0 + 1e-6
    # Closing on the torus: continuing the sinusoid one more period-step equals wrapping around.
    xs = torch.arange(w + 1, dtype=torch.float64) / w
    k = torch.tensor(raw.round())
    ext = torch.sin(2 * math.pi * k[:, 0, None] * xs + phase[0, :, 0].double())
    assert torch.allclose(ext[:, -1], ext[:, 0], atol=1e-9)
    assert torch.allclose(torch.from_numpy(per_cell[:, 0, :]), ext[:, :w], atol=1e-5)


def test_determinism_per_seed(gen_model):
    model = gen_model
    w = one_hot(1)

    def sample(seed):
        return model(w, (4, 6), torch.Generator().manual_seed(seed))

    a, b, c = sample(7), sample(7), sample(8)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-2


def test_style_mixing(gen_model):
    model = gen_model
    e = model.style.weight
    mix = model.embed(torch.tensor([[0.5, 0.5]]))
    assert torch.allclose(mix[0], (e[0] + e[1]) / 2, atol=1e-6)
    pure = model.embed(torch.eye(2))
    assert torch.allclose(pure, e, atol=1e-6)

    def image(w):
        return model(w, (4, 4), torch.Generator().manual_seed(0))

    mixed, a, b = image(torch.tensor([[0.5, 0.5]])), image(one_hot(0)), image(one_hot(1))
    assert (mixed - a).abs().max() > 1e-2
    assert (mixed - b).abs().max() > 1e-2
    assert (a - b).abs().max() > 1e-2


def test_a_per_image_generator_starts_as_the_one_it_extends_and_then_draws_per_image():
    """descriptor_dim > 0 adds image_code, zero at first: the extended generator draws what the base drew, for
    any descriptors; embed(weights) alone still works (the style's own row); the config of a generator without
    it is written as before (no descriptor_dim key), so its file header and graph name do not change."""
    base = TextureGenerator(GeneratorConfig(styles=2, style_dim=8, local_dim=4, global_dim=4, periodic_dim=4,
                                            widths=(16, 8, 8))).eval()
    assert "descriptor_dim" not in base.cfg.to_dict()
    ext = TextureGenerator(GeneratorConfig(**{**base.cfg.to_dict(), "descriptor_dim": 13})).eval()
    assert ext.cfg.to_dict()["descriptor_dim"] == 13
    missing, unexpected = ext.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing == ["image_code.weight"]
    phi = torch.randn(2, 13, generator=torch.Generator().manual_seed(1))
    w = torch.eye(2)
    with torch.no_grad():
        a = base(w, (3, 4), torch.Generator().manual_seed(3))
        b = ext(w, (3, 4), torch.Generator().manual_seed(3), phi)
        assert torch.equal(a, b) and torch.equal(ext.embed(w), base.embed(w))
        ext.image_code.weight.normal_(0, 0.5)
        s = ext.embed(w, phi)
        assert torch.allclose(s, ext.style.weight + phi @ ext.image_code.weight.T, atol=1e-6)
        c = ext(w, (3, 4), torch.Generator().manual_seed(3), phi)
        other = ext(w, (3, 4), torch.Generator().manual_seed(3), phi.flip(0))  # each style with another image
    assert (c - a).abs().max() > 1e-2 and (c - other).abs().max() > 1e-2
    with pytest.raises(AssertionError, match="no per-image conditioning"):
        base.embed(w, phi)
