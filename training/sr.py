"""`python -m training sr`: train the tileable upscaler on (LR, HR) pairs.

LR images are made from HR crops by circular-padded antialiased bicubic downscaling, with mild
random blur before and noise after on part of the batch, so the model copes with GAN outputs
(which are softer and noisier than clean downscales) instead of expecting one exact degradation.

With `--adversarial W` the upscaler is also trained against a discriminator, as SRGAN (Ledig et al.
2017) pairs SRResNet with one, but without a pretrained perceptual network (none can be downloaded
here): the discriminator sees only the high frequencies of an image (the image minus its Gaussian blur)
beside the bicubic upscale of its LR input, so it judges whether the detail is plausible for that input;
the pixel loss can be moved to the low frequencies (`--lowpass σ`), leaving the detail to the
discriminator instead of pulling it to the blurred mean.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from core.files import check_can_write
from core.imageio import write_png
from core.upscaler import Upscaler, UpscalerConfig, downscale, make_noise, wrap_upsample

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
    init: Path | None = None
    """start from an sr run's folder or an exported upscaler file (e.g. the shipped
    core/weights/tessera_sr_x4.safetensors); its scale, channels and blocks are used"""
    adversarial: float = 0.0
    """weight of the adversarial loss (0: the pixel loss alone, as the shipped upscalers)"""
    lowpass: float = 0.0
    """σ in HR pixels: the pixel loss compares Gaussian-blurred output and target, leaving detail finer
    than σ to the discriminator (0: the whole image)"""
    fourier: float = 0.0
    """weight of an L1 loss between the amplitude spectra of the output's and the target's detail (each
    image minus its σ = 1 px blur; Fuoli et al. 2021, "Fourier space losses for efficient perceptual image
    super-resolution"): it asks for the target's energy at each spatial frequency but leaves the phase free,
    so, unlike the pixel loss, its optimum is not the blurred mean, and a periodic mesh (energy at a few
    frequencies only) is penalised; 0 = off"""
    mesh: float = 0.0
    """weight of a penalty on a mesh locked to the upscaler's sub-pixel grid: the energy of the mean
    scale×scale block of the output's detail over the energy of the target's detail (sub_pixel_mesh; on 128²
    crops real textures read 0.003, the PSNR upscaler 0.0005, the adversarial runs without it 0.06–0.5); 0 = off"""
    noise: int = 0
    """channels of per-pixel noise inputs into the upscaler's last stage (StyleGAN's noise inputs, for
    stochastic grain rather than a detail fixed by the input; core.upscaler); with --init from an upscaler
    without them they start at zero weight, so the model starts as the same function; 0 = none"""
    grain: bool = False
    """grain instead of noise inputs (sets 4 noise channels): i.i.d. noise at full resolution added to the
    output, scaled by a gain map the model computes from its last stage (core.upscaler), starting at zero.
    The pixel loss then judges the output without its grain (the grain's expectation is zero) and --energy
    trains the gain alone: the grain supplies the detail the mean lacks, and the mean stays as sharp as the
    pixel loss makes it instead of being pushed to amplify its input"""
    energy: float = 0.0
    """weight of an L1 loss between the local energy of the output's and the target's detail (the square
    of each image minus its σ = 1 px blur, blurred with σ = 2 px), over the target's mean detail energy:
    it asks for as much detail in each place as the target has and leaves its phase free, so noise can
    supply it; 0 = off"""
    d_width: int = 32
    """discriminator channels at full resolution (with --adversarial)"""
    r1: float = 1.0
    """R1 penalty weight on real images (lazy, every 4 steps; with --adversarial)"""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.init = None if self.init is None else Path(self.init)
        if self.init is not None and self.resume:
            raise ValueError("--init starts a new run from another one; --resume continues this one: pick one")
        for name in ("adversarial", "lowpass", "fourier", "mesh", "energy"):
            if not 0 <= getattr(self, name) < float("inf"):
                raise ValueError(f"--{name} {getattr(self, name)} must be finite and ≥ 0")
        if self.noise < 0:
            raise ValueError(f"--noise {self.noise} must be ≥ 0")
        if self.grain and self.noise not in (0, 4):
            raise ValueError(f"--grain takes 4 noise channels: drop --noise {self.noise}")
        if self.d_width < 1:
            raise ValueError(f"--d-width {self.d_width} must be ≥ 1")
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


HF_SIGMA = 1.0  # HR pixels: what the discriminator sees is the image minus this blur


def high_pass(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) → the same minus its circular Gaussian blur (σ = HF_SIGMA): the detail alone."""
    return x - gaussian_blur(x, torch.full((x.shape[0],), HF_SIGMA, device=x.device, dtype=x.dtype))


class DetailDiscriminator(nn.Module):
    """Patch discriminator on detail: input the high frequencies of an HR image (×4, to a unit-ish range)
    beside the bicubic upscale of its LR input; output one logit per patch of about 22 px (B, 1, H/4, W/4).
    No spectral norm: R1 on real images keeps it in check (as in StyleGAN2)."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(6, w, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, 1, 3, padding=1))

    def forward(self, hr: torch.Tensor, lr_up: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([high_pass(hr) * 4, lr_up * 2 - 1], dim=1))


def detail_spectrum_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean |‖F(high_pass(sr))‖ − ‖F(high_pass(hr))‖| over images, channels and frequencies, with the
    orthonormal 2-D DFT (so an amplitude is on the scale of a pixel value): (B, C, H, W) → a scalar.
    The DFT takes each crop as periodic; the high-pass makes the false edge at its border small."""
    amp_sr = torch.fft.rfft2(high_pass(sr.float()), norm="ortho").abs()
    amp_hr = torch.fft.rfft2(high_pass(hr.float()), norm="ortho").abs()
    return (amp_sr - amp_hr).abs().mean()


def detail_energy_loss(sr: torch.Tensor, hr: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    """Mean |blur(high_pass(sr)²) − blur(high_pass(hr)²)| over the target's mean detail energy, the blur a
    circular Gaussian of `sigma` px, on each channel and on their mean (so that detail whose colours move
    together, as in real textures, is asked for, not chroma speckle of the right energy per channel):
    (B, C, H, W) → a scalar ≥ 0. A moment-matching loss (as in texture synthesis by matched statistics,
    Portilla & Simoncelli 2000, here only the local variance of the finest band): it is 0 for any detail
    of the target's local energy, whatever its phase, so unlike the pixel loss it does not pull the detail
    to the blurred mean."""
    s = torch.full((sr.shape[0],), sigma, device=sr.device, dtype=torch.float32)
    e_sr, e_hr = (gaussian_blur(high_pass(torch.cat([x, x.mean(1, keepdim=True)], 1).float()).pow(2), s)
                  for x in (sr, hr))
    return (e_sr - e_hr).abs().mean() / e_hr.mean().clamp_min(1e-8)


def sub_pixel_mesh(sr: torch.Tensor, hr: torch.Tensor, scale: int) -> torch.Tensor:
    """How much of the output's detail is a mesh on the sub-pixel grid, the mean of
    ‖mean scale×scale block of high_pass(sr)‖² / ‖high_pass(hr)‖² (per pixel) over images: (B, C, H, W) with
    H, W multiples of `scale` → a scalar ≥ 0. The differentiable square of core.metrics.grid_pattern, with
    the target's detail as the yardstick so that adding detail elsewhere cannot lower it. A mesh that an
    ESPCN last stage draws (each sub-pixel position its own filters; Odena et al. 2016, "Deconvolution and
    checkerboard artifacts") survives the block mean; texture detail, at every phase, averages out."""
    b, c, h, w = sr.shape
    detail = high_pass(sr.float()).reshape(b, c, h // scale, scale, w // scale, scale)
    block = detail.mean(dim=(2, 4))                                            # (B, C, scale, scale)
    energy = high_pass(hr.float()).pow(2).mean(dim=(1, 2, 3))
    return (block.pow(2).mean(dim=(1, 2, 3)) / energy.clamp_min(1e-6)).mean()


def block_grid(y: torch.Tensor, scale: int) -> torch.Tensor:
    """(spread / mean)² over the `scale` phases of the mean |neighbour difference|, columns and rows
    averaged: 0 when sharpness does not depend on the position inside the scale×scale blocks."""
    total = y.new_zeros(())
    for dim in (-1, -2):
        d = y.diff(dim=dim).abs().mean(dim=tuple(i for i in range(y.dim()) if i != y.dim() + dim))
        phases = torch.stack([d[k::scale].mean() for k in range(scale)])
        total = total + (phases.std() / phases.mean().clamp_min(1e-8)) ** 2
    return total / 2


def start_from(path: Path) -> tuple[dict, dict[str, torch.Tensor], int, float]:
    """An sr run's folder (its EMA weights) or an exported upscaler file → (upscaler config, state dict,
    step, wall time in s). Raises ValueError for anything else."""
    from core import weights

    if path.is_file():
        meta, tensors = weights.read(path)
        if meta.get("kind") != "upscaler":
            raise ValueError(f"--init {path}: an exported upscaler or an sr run folder is needed (it holds "
                             f"{meta.get('kind')!r})")
        training = meta.get("training", {})
        return meta["config"], tensors, int(training.get("steps", 0)), float(training.get("wall_time_s", 0.0))
    meta, tensors, _ = checkpoint.load(path, "--init takes the --out folder of an earlier sr run or an exported "
                                             "upscaler file")
    if meta.get("kind") != "sr":
        raise ValueError(f"--init {path}: an sr checkpoint is needed (it holds {meta.get('kind')!r})")
    state = {k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")}
    return meta["upscaler"], state, meta["step"], meta["wall_time_s"]


def noise_flags(noise: int, grain: bool) -> str:
    """The sr flags that give an upscaler `noise` noise channels (as `grain`, or not): '' for none."""
    return "--grain" if grain else f"--noise {noise}" if noise else ""


def train(cfg: SrConfig) -> Path:
    check_can_write(cfg.out, cfg.out)  # a read-only or impossible --out fails now, not at step 10
    d = setup(cfg.device)
    torch.manual_seed(cfg.seed + d.rank)
    g = torch.Generator().manual_seed(cfg.seed * 1000 + d.rank)

    data = StyleImages.from_folder(cfg.data, cfg.image_size)
    start = None if cfg.init is None else start_from(cfg.init)
    if start is not None:
        cfg.scale, cfg.channels, cfg.blocks = (start[0][k] for k in ("scale", "channels", "blocks"))
        if cfg.crop % cfg.scale or cfg.crop < 8 * cfg.scale:
            raise ValueError(f"--crop {cfg.crop} must be a multiple of {cfg.init}'s scale {cfg.scale} and at least "
                             f"{8 * cfg.scale}")
    for flag, on in (("--adversarial", cfg.adversarial), ("--grain", cfg.grain)):
        if on and cfg.scale != 4:
            raise ValueError(f"{flag} trains generate's ×4 detail upscaler: --scale {cfg.scale} must be 4")
    ucfg = UpscalerConfig(scale=cfg.scale, channels=cfg.channels, blocks=cfg.blocks,
                          noise=4 if cfg.grain else cfg.noise, grain=cfg.grain)
    model = Upscaler(ucfg).to(d.device)
    if start is not None:
        # a start without noise inputs grows them (silent at first); one with them must keep them as they are
        had = noise_flags(start[0].get("noise", 0), bool(start[0].get("grain", False)))
        if had and had != noise_flags(ucfg.noise, ucfg.grain):
            raise ValueError(f"--init {cfg.init} was trained with {had}: pass {had} to start from it")
        missing, unexpected = model.load_state_dict(start[1], strict=False)
        if unexpected or any(not k.startswith(("noise_in.", "grain.")) for k in missing):
            raise ValueError(f"--init {cfg.init}: its weights ({unexpected or missing}) do not fit this upscaler")
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    modules: dict[str, nn.Module] = {"model": model, "ema": ema}
    optimizers = {"opt": opt}
    D = None
    if cfg.adversarial:
        D = DetailDiscriminator(cfg.d_width).to(d.device)
        modules["D"] = D
        optimizers["opt_d"] = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(0.0, 0.99))

    step, wall = 0, 0.0
    if cfg.resume:
        meta, tensors, header = checkpoint.load(cfg.out)
        if meta["upscaler"] != ucfg.to_dict():
            had = UpscalerConfig(**meta["upscaler"])
            want = " ".join(f"--{k} {getattr(had, k)}" for k in ("scale", "channels", "blocks"))
            want += f" {noise_flags(had.noise, had.grain)}".rstrip()
            raise ValueError(f"--resume: checkpoint upscaler {meta['upscaler']} differs from {ucfg.to_dict()}: "
                             f"pass {want}, or start a new run from it with --init")
        if D is not None and not any(k.startswith("D.") for k in tensors):
            raise ValueError(f"--resume: {cfg.out} was trained without --adversarial; start a new run from it "
                             f"with --init {cfg.out}")
        for name, m in modules.items():
            checkpoint.restore_module(m, name, tensors)
        for name, o in optimizers.items():
            checkpoint.restore_optimizer(o, name, tensors, header, cfg.lr)
        if f"extra.g{d.rank}" in tensors:
            g.set_state(checkpoint.extra(tensors, f"g{d.rank}"))
        step, wall = meta["step"], meta["wall_time_s"]
    elif d.main and (cfg.out / checkpoint.LAST).exists():
        raise ValueError(f"{cfg.out} already holds a checkpoint: pass --resume to continue it, or choose another --out")
    elif start is not None:
        step, wall = start[2], start[3]

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
            checkpoint.save(cfg.out, modules, optimizers, meta, {"g0": g.get_state()})

    def sample(step_now: int) -> None:
        if not d.main:
            return
        hr, _ = data.sample(4, cfg.crop, torch.Generator().manual_seed(99), wrap=False)
        lr = downscale(hr, cfg.scale).clamp(0, 1)
        grain = make_noise(ucfg, lr.shape, torch.Generator().manual_seed(98), d.device)
        with torch.no_grad():
            sr = ema(lr.to(d.device), grain).float().cpu().clamp(0, 1)
        rows = torch.cat([wrap_upsample(lr, cfg.scale).clamp(0, 1), sr, hr])  # bicubic / model / truth
        write_png(cfg.out / "samples" / f"step_{step_now:07d}.png", grid(rows, 4))

    base_loss = F.l1_loss if cfg.loss == "l1" else F.mse_loss

    def pixel_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        if cfg.lowpass:
            sigma = torch.full((sr.shape[0],), cfg.lowpass, device=sr.device, dtype=sr.dtype)
            sr, hr = gaussian_blur(sr, sigma), gaussian_blur(hr, sigma)
        return base_loss(sr, hr)

    clock = Clock(step, cfg.steps, cfg.minutes, wall)
    bar = progress(clock, f"sr×{cfg.scale}", d.main)
    loss_d = r1 = torch.zeros((), device=d.device)
    while clock.running():
        # Crops stay inside each image: user images need not tile, and a seam is no target to learn.
        hr, _ = data.sample(cfg.batch, cfg.crop, g, wrap=False)
        hr = hr.to(d.device)
        lr = degrade(hr, cfg, g)
        grain = make_noise(ucfg, lr.shape, g, d.device)
        with autocast(d, cfg.bf16):  # one pass serves both steps: the D step only reads it, detached
            mean, grain_out = (p.float() for p in net(lr, grain, parts=True))
            sr = mean + grain_out
        if D is not None:  # D step: logistic loss, real HR vs the upscaler's output for the same LR; lazy R1
            lr_up = wrap_upsample(lr, cfg.scale)
            D.requires_grad_(True)
            do_r1 = cfg.r1 > 0 and clock.step % 4 == 0
            real = hr.detach().requires_grad_(do_r1)
            with autocast(d, cfg.bf16):
                lr_, lf = D(real, lr_up).float(), D(sr.detach(), lr_up).float()
            loss_d = F.softplus(-lr_).mean() + F.softplus(lf).mean()
            if do_r1:
                (grad,) = torch.autograd.grad(lr_.sum(), real, create_graph=True)
                r1 = grad.pow(2).sum(dim=(1, 2, 3)).mean()
                loss_d = loss_d + cfg.r1 * 0.5 * 4 * r1
                r1 = r1.detach()
            optimizers["opt_d"].zero_grad(set_to_none=True)
            loss_d.backward()
            optimizers["opt_d"].step()
            D.requires_grad_(False)
        with autocast(d, cfg.bf16):
            # The grain's expectation is zero: the pixel loss judges the rest (the mean), and the grain is
            # judged by how much detail it adds to that mean, which the energy loss sees without moving the mean.
            pixel = pixel_loss(mean, hr)
            loss = pixel + cfg.grid * block_grid(sr, cfg.scale) if cfg.grid else pixel
            if cfg.fourier:
                spectrum = detail_spectrum_loss(sr, hr)
                loss = loss + cfg.fourier * spectrum
            if cfg.mesh:
                mesh = sub_pixel_mesh(sr, hr, cfg.scale)
                loss = loss + cfg.mesh * mesh
            if cfg.energy:
                energy = detail_energy_loss(mean.detach() + grain_out if ucfg.grain else sr, hr)
                loss = loss + cfg.energy * energy
            if D is not None:
                loss = loss + cfg.adversarial * F.softplus(-D(sr, lr_up).float()).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            ema_update(ema, model, cfg.ema, clock.step)
        losses = {cfg.loss: pixel}
        if cfg.fourier:
            losses["spectrum"] = spectrum.detach()
        if cfg.mesh:
            losses["mesh"] = mesh.detach()
        if cfg.energy:
            losses["energy"] = energy.detach()
        if D is not None:
            losses |= {"loss_d": loss_d.detach(), "r1": r1}
        end_step(cfg, d, clock, bar, cfg.batch * d.world, save=save, sample=sample, losses=losses)
    bar.close()
    save()
    sample(clock.step)
    teardown(d)
    return cfg.out / checkpoint.LAST
