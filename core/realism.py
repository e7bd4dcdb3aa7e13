"""Classifier two-sample test: how often a small CNN tells generated texture crops from real ones.

After Lopez-Paz & Oquab, "Revisiting classifier two-sample tests", ICLR 2017. A classifier is trained from
scratch (no pretrained weights, none can be downloaded here) to tell crops of set A from crops of set B;
its accuracy on held-out crops — from images and seeds it never saw in training — is the statistic:
0.5 means the sets are indistinguishable to it, 1.0 means B is always caught. One classifier covers all
styles at once and is scored per style (cheaper and steadier than one per style).

The same test with real images in both roles (disjoint images) is the *floor*: what the test reads when
nothing is generated. It is measured in the same run, and every figure is repeated with new image/seed
splits, new crops and a new classifier so that its spread says what a difference means.

Crops are (N, S, S, 3) uint8 RGB, S = CROP (64) pixels; the classifier sees them as float in [-1, 1],
randomly flipped horizontally, vertically and about the diagonal (a texture's orientation is the user's
to choose in the material, so only what survives those flips is judged).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import metrics

CROP = 64


@dataclass(frozen=True)
class C2stConfig:
    """How each classifier is trained; the defaults are what the model card reports."""

    crop: int = CROP       # side of each crop in pixels
    crops: int = 96        # crops per style, role and half (fit / held out)
    steps: int = 500       # optimiser steps per classifier
    batch: int = 64        # crops per step, half from each role
    width: int = 16        # channels of the first layer
    lr: float = 2e-3


class Critic(nn.Module):
    """Five 3×3 convolutions (four of them stride 2), LeakyReLU, then the mean and standard deviation of
    each channel over the image → one logit. (B, 3, S, S) float → (B,) float; ~63 k parameters at width 16.
    Mean and std pooling make it a judge of texture statistics at every scale up to its receptive field
    (33 px), not of where things are in the crop."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        chans = [(3, w, 1), (w, w, 2), (w, 2 * w, 2), (2 * w, 4 * w, 2), (4 * w, 4 * w, 2)]
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, stride=s, padding=1) for i, o, s in chans)
        self.head = nn.Linear(8 * w, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
        feats = torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3), correction=0)], dim=1)
        return self.head(feats)[:, 0]


# helpers

def _to_batch(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def _flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random element of the square's symmetry group per crop (8 flips and turns)."""
    b = x.shape[0]
    k = torch.randint(0, 8, (b,), generator=gen)
    x = torch.where((k & 1).bool()[:, None, None, None], x.flip(3), x)
    x = torch.where((k & 2).bool()[:, None, None, None], x.flip(2), x)
    return torch.where((k & 4).bool()[:, None, None, None], x.transpose(2, 3), x)


def crops_of(groups: Sequence[Sequence[np.ndarray]], n: int, rng: np.random.Generator,
             size: int = CROP) -> np.ndarray:
    """n size² crops spread evenly over the images of `groups` (lists of (H, W, 3) uint8 images, each side
    ≥ size) → (n, size, size, 3) uint8. Crops stay inside each image: real textures are not all tileable,
    and a crop across a seam would give the real role something generated textures never have."""
    images = [img for g in groups for img in g]
    assert images, "no images to crop"
    per = [n // len(images) + (i < n % len(images)) for i in range(len(images))]
    out: list[np.ndarray] = []
    for img, k in zip(images, per):
        if k:
            out += metrics.random_crops(img, k, size, rng=rng, wrap=False)
    return np.stack(out)


def halves(items: Sequence, rng: np.random.Generator) -> tuple[list, list]:
    """A random split into two halves (the first gets the odd one)."""
    order = rng.permutation(len(items))
    cut = (len(items) + 1) // 2
    return [items[i] for i in order[:cut]], [items[i] for i in order[cut:]]


def _summary(runs: list[float]) -> dict:
    """Mean and sample standard deviation over repeats."""
    return {"acc": float(np.mean(runs)), "std": float(np.std(runs, ddof=1)) if len(runs) > 1 else 0.0, "runs": runs}


# the test

def classifier_accuracy(fit: Mapping[str, tuple[np.ndarray, np.ndarray]],
                        held_out: Mapping[str, tuple[np.ndarray, np.ndarray]],
                        cfg: C2stConfig = C2stConfig(), seed: int = 0) -> dict[str, float]:
    """Train one Critic to tell role A (label 0) from role B (label 1) on `fit`, score it on `held_out`.

    fit, held_out: {style: (A crops, B crops)}, each (N, S, S, 3) uint8 with the same S; held-out crops
    must come from other images/seeds than the fit ones. Returns {style: accuracy on its held-out crops,
    both roles weighted equally} in [0, 1]. Raises ValueError when a style lacks crops in either role.
    """
    for name, sets in (("fit", fit), ("held-out", held_out)):
        for style, (a, b) in sets.items():
            if len(a) == 0 or len(b) == 0:
                raise ValueError(f"{name} crops of {style!r}: need both roles, got {len(a)} and {len(b)}")
    gen = torch.Generator().manual_seed(seed)
    xs = np.concatenate([c for a, b in fit.values() for c in (a, b)])
    ys = np.concatenate([np.full(len(c), float(r)) for a, b in fit.values() for r, c in ((0, a), (1, b))])
    x_all, y_all = _to_batch(xs), torch.from_numpy(ys).float()
    # Draw each batch half from each role, so one role's larger share cannot bias the classifier.
    idx = [torch.nonzero(y_all == r)[:, 0] for r in (0, 1)]
    with torch.random.fork_rng():  # a seeded initialisation that leaves the caller's random state alone
        torch.manual_seed(seed)
        critic = Critic(cfg.width)
    opt = torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=(0.5, 0.99))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    half = cfg.batch // 2
    critic.train()
    for _ in range(cfg.steps):
        pick = torch.cat([i[torch.randint(0, len(i), (half,), generator=gen)] for i in idx])
        loss = F.binary_cross_entropy_with_logits(critic(_flip(x_all[pick], gen)), y_all[pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    critic.eval()
    out = {}
    with torch.inference_mode():
        for style, (a, b) in held_out.items():
            right = [float((critic(_to_batch(c)) > 0).float().eq(float(r)).float().mean()) for r, c in ((0, a), (1, b))]
            out[style] = 0.5 * (right[0] + right[1])
    return out


def two_sample(real: Mapping[str, Sequence[Sequence[np.ndarray]]],
               others: Mapping[str, Mapping[str, Sequence[Sequence[np.ndarray]]]],
               *, repeats: int = 3, cfg: C2stConfig = C2stConfig(), seed: int = 0,
               progress: Callable[[int, int], None] | None = None) -> dict:
    """The realism figure and its floor, repeated.

    real:   {style: groups} — the real role: each group a list of (H, W, 3) uint8 images that are near-
            duplicates of each other (recolours), so that no group is split between fit and held out;
            ≥ 2 groups per style.
    others: {name: {style: groups}} — each set the test is run against: generated textures of each
            release (one group per seed), and other real textures of the same styles (the floor).
    Each repeat splits every style's groups into halves (fit / held out) anew and draws cfg.crops crops per
    half; the real role's halves and crops are drawn once per repeat and shared by every entry (a paired
    design: differences between entries are not blurred by different real samples). One classifier per
    entry and repeat, its split, crops and initialisation seeded by `seed`, the repeat and the entry's
    name, so an entry's figures do not depend on which other entries are measured beside it. Returns
    {name: {style: {"acc": mean, "std": sample sd over repeats, "runs": [...]}, "mean": the same over its
    styles}}; a style with < 2 groups in either role is left out of that entry.
    `progress(done, total)` is told at the start and after each classifier (entries × repeats).
    """
    styles = {name: [s for s in real if len(real[s]) >= 2 and len(other.get(s, ())) >= 2]
              for name, other in others.items()}
    runs: dict[str, dict[str, list[float]]] = {name: {s: [] for s in st} for name, st in styles.items()}
    means: dict[str, list[float]] = {name: [] for name in others}
    total, done = repeats * sum(1 for st in styles.values() if st), 0
    if progress:
        progress(0, total)  # the total, before the first classifier
    for r in range(repeats):
        rng = np.random.default_rng([seed, r])
        real_sets = {}
        for s in sorted({s for st in styles.values() for s in st}):
            a, b = halves(real[s], rng)
            real_sets[s] = crops_of(a, cfg.crops, rng, cfg.crop), crops_of(b, cfg.crops, rng, cfg.crop)
        for name, other in others.items():
            if not styles[name]:
                continue
            # seeded by the entry's name, not its place: an entry reads the same beside any other entries
            orng = np.random.default_rng([seed, r, zlib.crc32(name.encode())])
            fit, held = {}, {}
            for s in styles[name]:
                oa, ob = halves(other[s], orng)
                fit[s] = real_sets[s][0], crops_of(oa, cfg.crops, orng, cfg.crop)
                held[s] = real_sets[s][1], crops_of(ob, cfg.crops, orng, cfg.crop)
            acc = classifier_accuracy(fit, held, cfg, seed=int(orng.integers(2**31)))
            for s in styles[name]:
                runs[name][s].append(acc[s])
            means[name].append(float(np.mean([acc[s] for s in styles[name]])))
            done += 1
            if progress:
                progress(done, total)
    out: dict[str, dict] = {}
    for name in others:
        out[name] = {s: _summary(v) for s, v in runs[name].items()}
        if means[name]:
            out[name]["mean"] = _summary(means[name])
    return out
