"""An SRResNet-family upscaler that keeps tileable inputs tileable.

SRResNet (Ledig et al. 2017) without batch norm (as in EDSR): a head conv, residual blocks, a body
conv with a long skip, then ×2 pixel-shuffle stages. Every conv pads circularly, so on a tileable
image `upscale(roll(x, k)) == roll(upscale(x), k·scale)` exactly. The network predicts a residual on
top of a wrap-around bicubic upsample, which makes it train fast and never worse than
interpolation for long.

`upscale_tiled` runs the model on tiles with enough context around each that the result equals a
single full-size pass, so memory stays bounded for 4096² and larger outputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import UpscalerConfig  # noqa: F401  (defined without torch; importable from here as before)
from .generator import torus_conv, wrap_upsample
from .noise import upscaler_inputs


LIGHT = UpscalerConfig(scale=4, channels=32, blocks=4)
FULL = UpscalerConfig(scale=4, channels=64, blocks=16)


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.conv2 = torus_conv(c, c), torus_conv(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.2))


def downscale(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downscaling on the torus (pad circularly, resize, crop)."""
    p = 2 * scale
    x = F.pad(hr, (p, p, p, p), mode="circular")
    x = F.interpolate(x, scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False)
    return x[..., 2:-2, 2:-2]


class Upscaler(nn.Module):
    def __init__(self, cfg: UpscalerConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.head = torus_conv(3, c)
        self.body = nn.Sequential(*[ResBlock(c) for _ in range(cfg.blocks)], torus_conv(c, c))
        # Upsampling is the costly part at high resolution: every ×2 stage halves the channels,
        # and the last one shuffles straight into RGB (ESPCN-style) instead of convolving at full size.
        stages: list[nn.Module] = []
        for _ in range(cfg.scale.bit_length() - 2):
            stages += [torus_conv(c, 4 * (c // 2)), nn.PixelShuffle(2), nn.LeakyReLU(0.2)]
            c //= 2
        self.up = nn.Sequential(*stages)
        self.tail = torus_conv(c, 3 * 4)
        self.shuffle = nn.PixelShuffle(2)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)
        # Noise inputs for stochastic detail (StyleGAN's, Karras et al. 2019): a 1×1 map of cfg.noise
        # channels of per-pixel noise into the last stage, from zero, so a model grown from one without
        # them starts as the same function. With cfg.grain the noise is instead grain on the output: its 4
        # channels at the last stage's resolution, pixel-shuffled, are one channel of i.i.d. noise at full
        # resolution, which a gain map (RGB, per 2×2 output pixels, from the last stage's features) scales:
        # stochastic detail that no convolution filters, so it cannot form a mesh on the sub-pixel grid.
        self.noise_in = nn.Conv2d(cfg.noise, c, 1, bias=False) if cfg.noise and not cfg.grain else None
        if self.noise_in is not None:
            nn.init.zeros_(self.noise_in.weight)
        self.grain = torus_conv(c, 3) if cfg.grain else None
        if self.grain is not None:
            nn.init.zeros_(self.grain.weight)
            nn.init.zeros_(self.grain.bias)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None,
                parts: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) in [0, 1] → (B, 3, H·scale, W·scale), not clamped. `noise`: for a model with noise
        inputs, (B, cfg.noise, H·s, W·s) with s = cfg.noise_scale, standard normal (make_noise); None reads
        zeros (the detail's mean, deterministic). A model without them takes no noise. `parts` (training a
        grain model): (the output without its grain, the grain), which sum to the output."""
        f = self.head(x)
        f = f + self.body(f)
        f = self.up(f)
        if noise is not None and not self.cfg.noise:
            raise ValueError("this upscaler has no noise inputs")
        if self.noise_in is not None and noise is not None:
            f = f + self.noise_in(noise.to(f.dtype))
        y = wrap_upsample(x, self.cfg.scale) + self.shuffle(self.tail(f))
        if self.grain is None or noise is None:  # no grain: no full-size zeros to add on generate's path
            return (y, torch.zeros_like(y)) if parts else y
        gain = F.interpolate(self.grain(f), scale_factor=2, mode="nearest")
        grain = gain * self.shuffle(noise.to(f.dtype))
        return (y, grain) if parts else y + grain


def seed_noise(cfg: UpscalerConfig, shape: tuple[int, ...], seeds: list[int],
               device: torch.device | str = "cpu") -> torch.Tensor | None:
    """The noise inputs `generate` gives an upscaler for images of `shape` (B, 3, H, W), one seed per image
    (core.noise.upscaler_inputs, as the ONNX runtime draws them): (B, cfg.noise, H·s, W·s) float32 on
    `device`, s = cfg.noise_scale; None for an upscaler without noise inputs."""
    grain = upscaler_inputs(cfg, shape, seeds)
    return None if grain is None else torch.from_numpy(grain).to(device)


def make_noise(cfg: UpscalerConfig, shape: tuple[int, ...], generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> torch.Tensor | None:
    """Standard normal noise for an upscaler with noise inputs and input of `shape` (B, 3, H, W), drawn by
    `generator` (on the CPU, as training draws): (B, cfg.noise, H·s, W·s) float32 on `device`, s =
    cfg.noise_scale; None for one without."""
    if not cfg.noise:
        return None
    b, _, h, w = shape
    s = cfg.noise_scale
    return torch.randn(b, cfg.noise, h * s, w * s, generator=generator).to(device)


def pad_context(x: torch.Tensor, m: int, tileable: bool) -> torch.Tensor:
    """`x` (B, C, H, W), any dtype, padded by `m` ≥ 0 pixels on every side → (B, C, H + 2m, W + 2m), same
    dtype and device: wrapping around the torus (tileable) or mirrored at the borders (as F.pad's
    "reflect"). Unlike F.pad, any `m` works, also one larger than the image: a 1×1 or 16×16 image gets
    all the context the model needs, wrapped or mirrored as often as it takes."""
    def index(n: int) -> torch.Tensor:
        i = torch.arange(-m, n + m, device=x.device)
        if tileable or n == 1:
            return i % n
        period = 2 * n - 2  # reflect without repeating the edge pixel: 0 1 … n-1 n-2 … 1 | 0 1 …
        i = i % period
        return torch.where(i >= n, period - i, i)

    return x[..., index(x.shape[-2])[:, None], index(x.shape[-1])[None, :]]


@torch.inference_mode()
def upscale_tiled(model: Upscaler, x: torch.Tensor, *, tile: int = 256, tileable: bool = True,
                  progress: Callable[[int, int], None] | None = None,
                  noise: torch.Tensor | None = None) -> torch.Tensor:
    """Upscale (B, 3, H, W) in tiles of `tile` low-res pixels with wrap-around (or mirrored) context.

    Equal to `model(x, noise)` on tileable input (up to float rounding), with memory bounded by the tile.
    Any size from 1×1 up works. `progress(done, total)` is called after each tile (it may raise to stop).
    `noise`: for a model with noise inputs, the noise of the whole image (make_noise), cut like the image.
    """
    s, m, r = model.cfg.scale, model.cfg.context, model.cfg.noise_scale
    b, _, h, w = x.shape
    if tileable and h <= tile and w <= tile and min(h, w) >= 2:
        return model(x, noise)  # the model itself lives on the torus (its bicubic skip pads 2 pixels)
    src = pad_context(x, m, tileable)
    nsrc = None if noise is None else pad_context(noise, m * r, tileable)
    if h <= tile and w <= tile:
        return model(src, nsrc)[..., m * s:(m + h) * s, m * s:(m + w) * s]
    out = torch.empty(b, 3, h * s, w * s, dtype=x.dtype, device=x.device)
    corners = [(y0, x0) for y0 in range(0, h, tile) for x0 in range(0, w, tile)]
    for i, (y0, x0) in enumerate(corners):
        y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
        part = None if nsrc is None else nsrc[..., y0 * r:(y1 + 2 * m) * r, x0 * r:(x1 + 2 * m) * r]
        res = model(src[..., y0:y1 + 2 * m, x0:x1 + 2 * m], part)
        out[..., y0 * s:y1 * s, x0 * s:x1 * s] = res[..., m * s:(m + y1 - y0) * s, m * s:(m + x1 - x0) * s]
        if progress:
            progress(i + 1, len(corners))
    return out
