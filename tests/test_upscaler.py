"""The tileable upscaler: shapes, roll equivariance, tiled == full pass, and the torus resamplers."""

from __future__ import annotations

import pytest
import torch

from core.upscaler import UpscalerConfig, downscale, upscale_tiled, wrap_upsample

TOL = 1e-5


# helpers

def rand_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def periodic_image(h: int, w: int, ys: torch.Tensor | None = None, xs: torch.Tensor | None = None,
                   ) -> torch.Tensor:
    """A smooth image that is exactly periodic on an h × w torus (optionally sampled at pixel coordinates
    `ys`, `xs`, which may be fractional)."""
    ys = (torch.arange(h, dtype=torch.float32) if ys is None else ys)[:, None] / h
    xs = (torch.arange(w, dtype=torch.float32) if xs is None else xs)[None, :] / w
    two_pi = 2 * torch.pi
    chans = [torch.sin(two_pi * (2 * xs + ys)), torch.cos(two_pi * 3 * ys) * torch.sin(two_pi * xs),
             torch.sin(two_pi * (xs - 2 * ys) + 0.5)]
    return (0.5 + 0.4 * torch.stack(chans))[None]


# tests

def test_config_rejects_bad_scale():
    with pytest.raises(AssertionError, match="scale"):
        UpscalerConfig(scale=3)


@pytest.mark.parametrize("scale", [2, 4])
def test_shapes(make_upscaler, scale):
    model = make_upscaler(scale)
    x = rand_image(12, 17)
    y = model(x)
    assert y.shape == (1, 3, 12 * scale, 17 * scale)
    assert torch.isfinite(y).all()
    # the (non-zero) tail really adds a residual on top of wrap-around bicubic
    assert (y - wrap_upsample(x, scale)).abs().max() > 1e-3
    assert upscale_tiled(model, x, tile=8).shape == y.shape


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("shift", [(1, 0), (0, 3), (5, -2)])
def test_roll_equivariance(make_upscaler, scale, shift):
    model = make_upscaler(scale)
    x = rand_image(12, 17, seed=1)
    ky, kx = shift
    with torch.no_grad():
        out = model(x)
        rolled = model(torch.roll(x, shifts=shift, dims=(2, 3)))
    expect = torch.roll(out, shifts=(ky * scale, kx * scale), dims=(2, 3))
    assert (rolled - expect).abs().max() < TOL


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("tile", [8, 16, 21])
def test_tiled_equals_full_pass_tileable(make_upscaler, scale, tile):
    model = make_upscaler(scale)
    x = rand_image(40, 29, seed=2)
    assert tile < min(x.shape[2:]), "the tile must be smaller than the image to test tiling"
    with torch.no_grad():
        full = model(x)
    tiled = upscale_tiled(model, x, tile=tile, tileable=True)
    assert tiled.shape == full.shape
    assert (tiled - full).abs().max() < TOL


@pytest.mark.parametrize("tileable", [True, False])
def test_tiled_batch_equals_each_image_alone(make_upscaler, tileable):
    model = make_upscaler(4)
    x = torch.cat([rand_image(40, 29, seed=s) for s in (4, 5, 6)])
    both = upscale_tiled(model, x, tile=16, tileable=tileable)
    for i in range(3):
        assert (both[i:i + 1] - upscale_tiled(model, x[i:i + 1], tile=16, tileable=tileable)).abs().max() < TOL


@pytest.mark.parametrize("scale", [2, 4])
def test_tiled_equals_one_big_tile_not_tileable(make_upscaler, scale):
    model = make_upscaler(scale)
    x = rand_image(40, 29, seed=3)
    one = upscale_tiled(model, x, tile=64, tileable=False)
    tiled = upscale_tiled(model, x, tile=12, tileable=False)
    assert one.shape == (1, 3, 40 * scale, 29 * scale)
    assert (tiled - one).abs().max() < TOL
    # the flag matters: without wrap-around the borders differ from the torus result
    with torch.no_grad():
        torus = model(x)
    assert (one - torus).abs().max() > 1e-3


@pytest.mark.parametrize("scale", [2, 4])
def test_wrap_upsample_constant(scale):
    x = torch.full((1, 3, 7, 10), 0.3)
    x[:, 1] = 0.8
    y = wrap_upsample(x, scale)
    assert y.shape == (1, 3, 7 * scale, 10 * scale)
    assert (y - y[:, :, :1, :1]).abs().max() < 1e-6
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([0.3, 0.8, 0.3]))


@pytest.mark.parametrize("scale", [2, 4])
def test_wrap_upsample_commutes_with_roll(scale):
    x = rand_image(9, 6, seed=4)
    a = wrap_upsample(torch.roll(x, shifts=(2, 1), dims=(2, 3)), scale)
    b = torch.roll(wrap_upsample(x, scale), shifts=(2 * scale, scale), dims=(2, 3))
    assert (a - b).abs().max() < TOL


@pytest.mark.parametrize("scale", [2, 4])
def test_downscale_constant(scale):
    hr = torch.full((1, 3, 32, 24), 0.6)
    lr = downscale(hr, scale)
    assert lr.shape == (1, 3, 32 // scale, 24 // scale)
    assert (lr - 0.6).abs().max() < 1e-5


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("k", [(1, 0), (0, 2), (3, 1)])
def test_downscale_commutes_with_roll(scale, k):
    hr = periodic_image(48, 32) + 0.05 * rand_image(48, 32, seed=5)  # any image is periodic on its torus
    lr = downscale(hr, scale)
    rolled = downscale(torch.roll(hr, shifts=(k[0] * scale, k[1] * scale), dims=(2, 3)), scale)
    assert (rolled - torch.roll(lr, shifts=k, dims=(2, 3))).abs().max() < TOL
    # a smooth periodic image survives downscaling: close to sampling it at the centres of the pixel
    # blocks, at the borders too (a non-circular pad would show there)
    smooth = downscale(periodic_image(48, 32), scale)
    ys, xs = (torch.arange(n // scale, dtype=torch.float32) * scale + (scale - 1) / 2 for n in (48, 32))
    expect = periodic_image(48, 32, ys, xs)
    assert smooth.shape == expect.shape == (1, 3, 48 // scale, 32 // scale)
    assert (smooth - expect).abs().max() < 0.03
