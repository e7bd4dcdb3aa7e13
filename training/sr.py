"""`python -m training sr`: train the tileable upscaler on (LR, HR) pairs.

LR images are made from HR crops by circular-padded antialiased bicubic downscaling, with mild
random blur before and noise after on part of the batch, so the model copes with GAN outputs
(which are softer and noisier than clean downscales) instead of expecting one exact degradation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from core.files import check_can_write
from core.imageio import write_png
from core.upscaler import Upscaler, UpscalerConfig, downscale, wrap_upsample

from . import checkpoint
from .common import (Clock, RunConfig, StyleImages, autocast, config_record, ema_update, end_step, grid,
                     hardware, progress, setup, teardown)


@dataclass
class SrConfig(RunConfig):
    scale: int = 4
    """2 or 4"""
    channels: int = 32
    """feature channels (SRResNet: 64)"""
    blocks: int = 4
    """residual blocks (SRResNet: 16)"""
    batch: int = 16
    """crops per step per process"""
    crop: int = 128
    """HR crop side in pixels"""
    image_size: int = 1024
    """training images are resized so their longer side is at most this"""
    lr: float = 2e-4
    loss: str = "l1"
    """l1 (robust, the usual choice) or mse (optimises PSNR directly; good for a final fine-tune)"""
    grid: float = 1.0
    """weight of a penalty on a block grid in the output: how much the mean |neighbour difference|
    varies with the position inside each scale×scale block (real images have no such grid; a model
    that sharpens block edges more than block centres leaves one, and the wrap edge sits on it); 0 = off"""
    blur_prob: float = 0.3
    """share of crops blurred (σ 0.3–1.2 HR px) before downscaling"""
    noise_prob: float = 0.3
    """share of LR crops with Gaussian noise (σ ≤ 0.02) added"""
    ema: float = 0.999

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scale not in (2, 4):
            raise ValueError(f"--scale {self.scale} is not supported: use 2 or 4")
        if self.crop % self.scale or self.crop < 8 * self.scale:
            raise ValueError(f"--crop {self.crop} must be a multiple of --scale and at least {8 * self.scale}")
        if self.channels < 2 or self.channels % 2:
            raise ValueError(f"--channels {self.channels} must be an even number ≥ 2")
        if self.loss not in ("l1", "mse"):
            raise ValueError(f"--loss {self.loss!r} is not supported: use l1 or mse")
        if self.blocks < 0 or self.batch < 1:
            raise ValueError("--batch must be ≥ 1 and --blocks ≥ 0")


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image circular Gaussian blur, sigma (B,) in pixels."""
    r = 3
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-t[None] ** 2 / (2 * sigma[:, None] ** 2))
    k = k / k.sum(1, keepdim=True)                                  # (B, 7)
    b, c, h, w = x.shape
    y = F.pad(x.reshape(1, b * c, h, w), (r, r, r, r), mode="circular")
    kx = k.repeat_interleave(c, 0)[:, None, None, :]
    ky = k.repeat_interleave(c, 0)[:, None, :, None]
    y = F.conv2d(F.conv2d(y, kx, groups=b * c), ky, groups=b * c)
    return y.reshape(b, c, h, w)


def degrade(hr: torch.Tensor, cfg: SrConfig, g: torch.Generator) -> torch.Tensor:
    b = hr.shape[0]
    blur = torch.rand(b, generator=g) < cfg.blur_prob
    if blur.any():
        sigma = (0.3 + 0.9 * torch.rand(b, generator=g)).to(hr.device)
        hr = torch.where(blur.to(hr.device)[:, None, None, None], gaussian_blur(hr, sigma), hr)
    lr = downscale(hr, cfg.scale)
    noisy = (torch.rand(b, generator=g) < cfg.noise_prob).float()
    level = noisy * torch.rand(b, generator=g) * 0.02
    lr = lr + level[:, None, None, None].to(hr.device) * torch.randn(lr.shape, generator=g).to(hr.device)
    return lr.clamp(0, 1)


def block_grid(y: torch.Tensor, scale: int) -> torch.Tensor:
    """(spread / mean)² over the `scale` phases of the mean |neighbour difference|, columns and rows
    averaged: 0 when sharpness does not depend on the position inside the scale×scale blocks."""
    total = y.new_zeros(())
    for dim in (-1, -2):
        d = y.diff(dim=dim).abs().mean(dim=tuple(i for i in range(y.dim()) if i != y.dim() + dim))
        phases = torch.stack([d[k::scale].mean() for k in range(scale)])
        total = total + (phases.std() / phases.mean().clamp_min(1e-8)) ** 2
    return total / 2


def train(cfg: SrConfig) -> Path:
    check_can_write(cfg.out, cfg.out)  # a read-only or impossible --out fails now, not at step 10
    d = setup(cfg.device)
    torch.manual_seed(cfg.seed + d.rank)
    g = torch.Generator().manual_seed(cfg.seed * 1000 + d.rank)

    data = StyleImages.from_folder(cfg.data, cfg.image_size)
    ucfg = UpscalerConfig(scale=cfg.scale, channels=cfg.channels, blocks=cfg.blocks)
    model = Upscaler(ucfg).to(d.device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))

    step, wall = 0, 0.0
    if cfg.resume:
        meta, tensors, header = checkpoint.load(cfg.out)
        if meta["upscaler"] != ucfg.to_dict():
            raise ValueError(f"--resume: checkpoint upscaler {meta['upscaler']} differs from {ucfg.to_dict()}")
        checkpoint.restore_module(model, "model", tensors)
        checkpoint.restore_module(ema, "ema", tensors)
        checkpoint.restore_optimizer(opt, "opt", tensors, header, cfg.lr)
        if f"extra.g{d.rank}" in tensors:
            g.set_state(checkpoint.extra(tensors, f"g{d.rank}"))
        step, wall = meta["step"], meta["wall_time_s"]
    elif d.main and (cfg.out / checkpoint.LAST).exists():
        raise ValueError(f"{cfg.out} already holds a checkpoint: pass --resume to continue it, or choose another --out")

    net = DDP(model) if d.world > 1 else model
    if d.main:
        (cfg.out / "samples").mkdir(parents=True, exist_ok=True)
        print(f"sr ×{cfg.scale}: {len(data)} images; {sum(p.numel() for p in model.parameters()) / 1e6:.3f}M "
              f"params; {d.world} process(es) on {d.device}")

    def save() -> None:
        if d.main:
            meta = {"kind": "sr", "step": clock.step, "wall_time_s": clock.wall, "upscaler": ucfg.to_dict(),
                    "train": config_record(cfg),
                    "sources": data.sources, "hardware": hardware(d)}
            checkpoint.save(cfg.out, {"model": model, "ema": ema}, {"opt": opt}, meta, {"g0": g.get_state()})

    def sample(step_now: int) -> None:
        if not d.main:
            return
        hr, _ = data.sample(4, cfg.crop, torch.Generator().manual_seed(99), wrap=False)
        lr = downscale(hr, cfg.scale).clamp(0, 1)
        with torch.no_grad():
            sr = ema(lr.to(d.device)).float().cpu().clamp(0, 1)
        rows = torch.cat([wrap_upsample(lr, cfg.scale).clamp(0, 1), sr, hr])  # bicubic / model / truth
        write_png(cfg.out / "samples" / f"step_{step_now:07d}.png", grid(rows, 4))

    base_loss = F.l1_loss if cfg.loss == "l1" else F.mse_loss

    def loss_fn(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        loss = base_loss(sr, hr)
        return loss + cfg.grid * block_grid(sr, cfg.scale) if cfg.grid else loss

    clock = Clock(step, cfg.steps, cfg.minutes, wall)
    bar = progress(clock, f"sr×{cfg.scale}", d.main)
    while clock.running():
        # Crops stay inside each image: user images need not tile, and a seam is no target to learn.
        hr, _ = data.sample(cfg.batch, cfg.crop, g, wrap=False)
        hr = hr.to(d.device)
        lr = degrade(hr, cfg, g)
        with autocast(d, cfg.bf16):
            loss = loss_fn(net(lr).float(), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            ema_update(ema, model, cfg.ema, clock.step)
        end_step(cfg, d, clock, bar, cfg.batch * d.world, save=save, sample=sample,
                 losses={cfg.loss: loss})
    bar.close()
    save()
    sample(clock.step)
    teardown(d)
    return cfg.out / checkpoint.LAST
