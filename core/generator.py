"""A style-conditional texture generator that lives on a torus.

Every layer is periodic: 3×3 convolutions with circular padding, bilinear upsampling on the torus
and per-pixel operations. The input is a grid of noise cells; each cell becomes `stride` × `stride`
output pixels. Because nothing in the network knows where the image borders are, rolling the noise
by k cells rolls the output by k·stride pixels, and tiling the noise 2×2 tiles the output 2×2: the
texture is seamless by construction, at every size.

The noise has three parts (after PSGAN, Bergmann et al. 2017):
  local     i.i.d. per cell: the spatial variation;
  global    constant over the image, drawn per seed, plus the style embedding: the look;
  periodic  sin(2π(kx·x/W + ky·y/H) + φ) with *integer* wave numbers (kx, ky) per channel, so the
            waves close on the torus. The frequencies are learned per style, in cycles per cell,
            and rounded to the nearest integer wave number for the grid at hand.
A grid sampled per cell holds no wave shorter than two cells (32 px at stride 16), while brick courses
repeat every 7–21 px in the training images. So a second set of waves, `fine_periodic_dim` of them, is
sampled at a finer level (`fine_level`, half the output resolution by default; frequencies learned per
style as above, starting spread over periods of 6–50 px) and added to that level's features with a
learned per-style amplitude (zero at the start, so a network extended with them draws exactly what it
drew before).
Per-pixel detail noise is added at every resolution with a learned strength per channel (as in
StyleGAN), which is what stochastic textures — sand, grass, gravel — are mostly made of.
Structured materials need more than waves: brick is courses of units whose joints shift from row to row,
each unit with its own colour. With layouts (`layouts` > 0) the generator also takes masonry-like lattices
drawn per seed (core.noise.layout: running bond, stack bond, planks; for each, the row and unit joints and a
value per unit), added at `fine_level` as the fine waves are, with a learned per-style amplitude that starts
at zero and learns LAYOUT_GAIN times faster than the rest (a gain on the layer's output, as StyleGAN's
learning-rate multipliers; at 2e-4 an amplitude from zero would need thousands of steps to matter). A layout
only offers a place for joints; whether and how a style draws them is learned. With `layout_styles` only
those styles see the layouts (the channels are scaled by a style mix's share of them), so sand or metal
cannot learn to draw the lattices' per-unit blocks.
With per-image conditioning (`descriptor_dim` > 0) a style is a set of members, one per training image:
image i of style c is embedded as style[c] + image_code(φ_i), φ_i its standardised descriptors
(core.descriptors), so one seed draws one coherent material instead of a blend of the style's images.
`image_code` starts at zero, so a network extended with it draws exactly what it drew before; an exported
file carries the table of members' embeddings, of which a seed picks one (core.noise.member_embedding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import noise
from .config import GeneratorConfig  # noqa: F401  (defined without torch; importable from here as before)


LAYOUT_GAIN = 10.0  # the layout amplitudes' output gain: their effective learning rate, ×10 (Adam)


# helpers

def waves(freq: torch.Tensor, cells: tuple[int, int], n: int, phase: torch.Tensor) -> torch.Tensor:
    """sin(2π(kx·x/W + ky·y/H) + φ) on a grid of cells × n samples per cell side: (B, C, H·n, W·n).

    `freq` (B, C, 2) is in cycles per cell; it is rounded to integer wave numbers per tile (with a
    straight-through gradient), so every wave closes on the torus exactly."""
    h, w = cells
    k = freq * torch.tensor([w, h], device=freq.device, dtype=freq.dtype)  # cycles per tile
    k = k + (k.round() - k).detach()
    xs = torch.arange(w * n, device=freq.device, dtype=freq.dtype) / (w * n)
    ys = torch.arange(h * n, device=freq.device, dtype=freq.dtype) / (h * n)
    arg = k[..., 0, None, None] * xs[None, None, None, :] + k[..., 1, None, None] * ys[None, None, :, None]
    return torch.sin(2 * math.pi * arg + phase)


def wrap_pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """(…, H, W) → (…, H + 2p, W + 2p), wrapped around the torus; 0 < p ≤ min(H, W).

    In PyTorch this is F.pad's circular mode. An ONNX export writes it out as slices and concatenations
    instead, so every execution provider runs it (ONNX's Pad "wrap" mode is young and not everywhere)."""
    if not torch.onnx.is_in_onnx_export():
        return F.pad(x, (p, p, p, p), mode="circular")
    x = torch.cat([x[..., -p:, :], x, x[..., :p, :]], dim=-2)
    return torch.cat([x[..., -p:], x, x[..., :p]], dim=-1)


class TorusConv2d(nn.Conv2d):
    """A k×k convolution on the torus (odd k): nn.Conv2d after `wrap_pad`, the same parameters (and
    state-dict names) as nn.Conv2d(padding_mode="circular")."""

    def __init__(self, cin: int, cout: int, k: int = 3):
        assert k % 2 == 1, f"kernel size {k} must be odd"
        super().__init__(cin, cout, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.kernel_size[0] // 2
        return self._conv_forward(wrap_pad(x, p) if p else x, self.weight, self.bias)


def torus_conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return TorusConv2d(cin, cout, k)


def wrap_upsample(x: torch.Tensor, scale: int, mode: str = "bicubic") -> torch.Tensor:
    """Nearest, bilinear or bicubic upsampling on the torus: pad two pixels circularly, upsample, crop."""
    x = wrap_pad(x, 2)
    x = F.interpolate(x, scale_factor=scale, mode=mode, align_corners=None if mode == "nearest" else False)
    return x[..., 2 * scale:-2 * scale, 2 * scale:-2 * scale]


class StyledConv(nn.Module):
    """Modulated circular 3×3 conv with weight demodulation (StyleGAN2), detail noise, leaky ReLU.

    The code (style embedding + per-seed global noise) scales the weights per input channel and
    each output channel is renormalised through its weights, not through the data. We tried the
    data-dependent norms first: a per-pixel norm let G paint flat colours, and instance norm made it
    plant bright blobs to steer the statistics (StyleGAN's "droplets"). Nothing here looks at
    spatial statistics, so roll and tiling identities hold exactly.
    """

    def __init__(self, cin: int, cout: int, code_dim: int, noise: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.affine = nn.Linear(code_dim, cin)
        nn.init.ones_(self.affine.bias)  # start as a plain convolution
        self.noise_strength = nn.Parameter(torch.zeros(cout)) if noise else None

    def forward(self, x: torch.Tensor, code: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        b, cin, h, w = x.shape
        cout = self.weight.shape[0]
        wgt = self.weight[None] * self.affine(code)[:, None, :, None, None]       # (B, out, in, 3, 3)
        wgt = wgt * torch.rsqrt(wgt.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        if b == 1:  # one image (inference, and an ONNX export): a plain convolution, no grouping
            x = F.conv2d(wrap_pad(x, 1), wgt[0].to(x.dtype))
        else:       # a batch: one group per image, each with its own weights
            x = wrap_pad(x, 1).reshape(1, b * cin, h + 2, w + 2)
            x = F.conv2d(x, wgt.reshape(b * cout, cin, 3, 3).to(x.dtype), groups=b).reshape(b, cout, h, w)
        if self.noise_strength is not None:
            assert noise is not None, "this layer adds detail noise: pass it"
            x = torch.addcmul(x, noise, self.noise_strength[None, :, None, None])
        bias = self.bias[None, :, None, None]
        if torch.is_grad_enabled():
            return F.leaky_relu(x + bias, 0.2) * math.sqrt(2)
        return F.leaky_relu_(x.add_(bias), 0.2).mul_(math.sqrt(2))  # inference: the same, in place


class TextureGenerator(nn.Module):
    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.style = nn.Embedding(cfg.styles, cfg.style_dim)
        nn.init.normal_(self.style.weight, std=1.0)
        # Periodic waves: per style, a frequency (cycles per cell, 2-D) for each channel.
        self.wave = nn.Linear(cfg.style_dim, 2 * cfg.periodic_dim)
        nn.init.normal_(self.wave.weight, std=0.02)
        with torch.no_grad():
            self.wave.bias.copy_(torch.rand(2 * cfg.periodic_dim) * 0.5 - 0.25)
        w = cfg.widths
        code = cfg.style_dim + cfg.global_dim  # what modulates every layer: style + per-seed global noise
        self.head = StyledConv(cfg.head_noise_dim + cfg.style_dim, w[0], code)
        self.blocks = nn.ModuleList()
        for cin, cout in zip(w[:-1], w[1:]):
            self.blocks.append(nn.ModuleList([StyledConv(cin, cout, code, noise=True),
                                              StyledConv(cout, cout, code, noise=True)]))
        self.head2 = StyledConv(w[0], w[0], code)
        self.to_rgb = torus_conv(w[-1], 3)
        if cfg.fine_periodic_dim:
            f = cfg.fine_periodic_dim
            self.fine_wave = nn.Linear(cfg.style_dim, 2 * f)
            nn.init.normal_(self.fine_wave.weight, std=0.02)
            with torch.no_grad():  # periods of 6–50 px at stride 16, half of them along the axes
                radius = torch.exp(torch.empty(f).uniform_(math.log(0.3), math.log(2.5)))  # cycles per cell
                angle = torch.rand(f) * math.pi
                angle[: f // 2] = torch.arange(f // 2) % 2 * (math.pi / 2)
                self.fine_wave.bias.copy_(torch.stack([radius * angle.cos(), radius * angle.sin()], 1).flatten())
            self.fine_amp = nn.Linear(cfg.style_dim, f)  # per style: how much of each wave; zero at first
            nn.init.zeros_(self.fine_amp.weight)
            nn.init.zeros_(self.fine_amp.bias)
            self.fine_proj = nn.Conv2d(f, w[cfg.fine_level - 1], 1, bias=False)  # joins the upsampled features
        if cfg.layouts:  # as the fine waves: a per-style amplitude, zero at first, and a 1×1 projection
            self.layout_amp = nn.Linear(cfg.style_dim, cfg.layout_dim)
            nn.init.zeros_(self.layout_amp.weight)
            nn.init.zeros_(self.layout_amp.bias)
            self.layout_proj = nn.Conv2d(cfg.layout_dim, w[cfg.fine_level - 1], 1, bias=False)
        if cfg.descriptor_dim:  # per image: an offset of the style embedding from the image's descriptors
            self.image_code = nn.Linear(cfg.descriptor_dim, cfg.style_dim, bias=False)
            nn.init.zeros_(self.image_code.weight)

    # noise

    def embed(self, weights: torch.Tensor, descriptors: torch.Tensor | None = None) -> torch.Tensor:
        """Style embedding (B, style_dim) for a (B, styles) matrix of mixing weights (one-hot for a pure
        style); with `descriptors` (B, descriptor_dim), standardised (core.descriptors.standardise), plus
        image_code of them: the embedding of the member those descriptors describe. Without them, the style's
        own row (a per-image generator's member at the mean descriptors)."""
        s = weights @ self.style.weight
        if descriptors is None:
            return s
        assert self.cfg.descriptor_dim, "this generator has no per-image conditioning: pass no descriptors"
        return s + self.image_code(descriptors.to(s.dtype))

    def layout_gate(self, weights: torch.Tensor) -> torch.Tensor | None:
        """(B,) the share of each row of mixing weights (B, styles) on the styles that draw on the layouts
        (GeneratorConfig.layout_gate); None when every style does."""
        if self.cfg.layout_styles is None:
            return None
        return weights[:, list(self.cfg.layout_styles)].sum(dim=1)

    def make_noise(self, s: torch.Tensor, cells: tuple[int, int], generator: torch.Generator | Sequence[int],
                   layout_gate: torch.Tensor | None = None) -> torch.Tensor:
        """Noise grid (B, noise_dim, H, W) for style embeddings `s` (B, style_dim) and `cells` = (H, W).

        `generator`: a torch.Generator on the CPU (training), or B seeds, one per row of `s`, drawn with
        numpy as core.noise does: the same noise the torch-free runtime (core.runtime) makes for a seed.
        Either way a seed gives the same noise on every device. `layout_gate` (B,): `layout_gate(weights)`,
        which scales the layout channels; needed, and only taken, when the config has `layout_styles`.
        """
        cfg, (h, w), b = self.cfg, cells, s.shape[0]
        if isinstance(generator, torch.Generator):
            local = torch.randn(b, cfg.local_dim, h, w, generator=generator)
            glob = torch.randn(b, cfg.global_dim, 1, 1, generator=generator)
            phase = torch.rand(b, cfg.periodic_dim, 1, 1, generator=generator) * (2 * math.pi)
            detail = torch.randn(b, cfg.detail_dim, h, w, generator=generator)
            fine_phase = (torch.rand(b, cfg.fine_periodic_dim, 1, 1, generator=generator) * (2 * math.pi)
                          if cfg.fine_periodic_dim else None)
            layout = None
            if cfg.layouts:  # core.noise draws lattices; their seeds come from this generator
                seeds = torch.randint(0, 2 ** 62, (b,), generator=generator).tolist()
                n = 2 ** cfg.fine_level
                layout = torch.from_numpy(np.stack([noise.layout(cells, n, cfg.layouts, k) for k in seeds]))
        else:
            draws = [noise.draw(cfg, cells, seed) for seed in generator]
            assert len(draws) == b, f"{len(draws)} seeds for {b} style embeddings"
            local, glob, phase, detail, fine_phase, layout = (
                torch.from_numpy(np.stack([getattr(d, f) for d in draws]))
                for f in ("local", "glob", "phase", "detail", "fine_phase", "layout"))
        wave = waves(self.wave(s).view(b, cfg.periodic_dim, 2), (h, w), 1, phase.to(s.device, s.dtype))
        parts = [local, glob.expand(-1, -1, h, w), wave, detail]
        if cfg.fine_periodic_dim:
            assert fine_phase is not None
            n = 2 ** cfg.fine_level
            fine = waves(self.fine_wave(s).view(b, cfg.fine_periodic_dim, 2), (h, w), n,
                         fine_phase.to(s.device, s.dtype))
            parts.append(F.pixel_unshuffle(fine, n))
        if cfg.layouts:
            assert layout is not None
            assert (layout_gate is None) == (cfg.layout_styles is None), "pass layout_gate(weights) exactly " \
                "when the config has layout_styles"
            if layout_gate is not None:
                layout = layout.to(layout_gate.device, layout_gate.dtype) * layout_gate.view(b, 1, 1, 1)
            parts.append(F.pixel_unshuffle(layout, 2 ** cfg.fine_level))
        return torch.cat([t.to(s.device, s.dtype) for t in parts], dim=1)

    # synthesis

    def synthesize(self, z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Noise grid (B, noise_dim, H, W) → image (B, 3, H·stride, W·stride) in [-1, 1]."""
        assert z.shape[1] == self.cfg.noise_dim, f"noise has {z.shape[1]} channels, want {self.cfg.noise_dim}"
        cfg = self.cfg
        head, detail = z[:, :cfg.head_noise_dim], z[:, cfg.head_noise_dim:cfg.head_noise_dim + cfg.detail_dim]
        x = torch.cat([head, s[:, :, None, None].expand(-1, -1, *z.shape[2:])], dim=1)
        code = torch.cat([s, z[:, cfg.local_dim:cfg.local_dim + cfg.global_dim].mean(dim=(2, 3))], dim=1)
        x = self.head2(self.head(x, code), code)
        start = 0
        fine_at = cfg.head_noise_dim + cfg.detail_dim
        layout_at = fine_at + cfg.fine_periodic_dim * 4 ** cfg.fine_level
        for level, (up, conv) in enumerate(self.blocks, start=1):
            n = 4 ** level
            noise = F.pixel_shuffle(detail[:, start:start + n], 2 ** level)  # (B, 1, H·2^l, W·2^l)
            start += n
            x = wrap_upsample(x, 2, cfg.upsample)
            if level == cfg.fine_level and cfg.fine_periodic_dim:
                fine = F.pixel_shuffle(z[:, fine_at:layout_at], 2 ** level)
                x = x + self.fine_proj(fine * self.fine_amp(s)[:, :, None, None])
            if level == cfg.fine_level and cfg.layouts:
                layout = F.pixel_shuffle(z[:, layout_at:], 2 ** level)
                x = x + self.layout_proj(layout * (LAYOUT_GAIN * self.layout_amp(s))[:, :, None, None])
            x = conv(up(x, code, noise), code, noise)
        return torch.tanh(self.to_rgb(x))

    def forward(self, weights: torch.Tensor, cells: tuple[int, int], generator: torch.Generator | Sequence[int],
                descriptors: torch.Tensor | None = None) -> torch.Tensor:
        s = self.embed(weights, descriptors)
        return self.synthesize(self.make_noise(s, cells, generator, self.layout_gate(weights)), s)
