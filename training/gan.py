"""`python -m training gan`: train the style-conditional torus generator.

Reads top to bottom: config → data → models → optimizers → (resume) → loop → checkpoint.
Hinge loss, spectral norm on D, lazy R1 on real images, EMA of G. D sees a random wrap-around
crop of every generated image, whose seam lands anywhere, so G is judged
on its seams too; real crops wrap around their (tileable) sources in the same way.
With --per-image, G and D are conditioned on each training image's descriptors as well as its style, and
every fake is paired with a real crop: the same style and the same image's descriptors.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.nn.utils import spectral_norm

from core import descriptors
from core.files import check_can_write
from core.config import LATTICE_KINDS
from core.generator import GeneratorConfig, TextureGenerator
from core.imageio import write_png

from . import checkpoint
from .common import (Clock, RunConfig, StyleImages, autocast, config_record, ema_update, end_step, grid,
                     hardware, progress, setup, teardown)


@dataclass
class GanConfig(RunConfig):
    init: Path | None = None
    """start from another run's checkpoint folder, or from an exported generator file (e.g. the shipped
    core/weights/tessera_gan.safetensors; D then starts afresh): styles are matched by name, a style the
    start lacks begins at the mean of its style embeddings; layers this generator adds (e.g. --fine-waves
    on a run that had none) start at their initial values, optimizers afresh; the step count and wall
    time carry on"""
    batch: int = 8
    """images per step per process"""
    crop: int = 64
    """side of what D sees: real crops and random wrap-around crops of generated images"""
    g_size: int = 128
    """side of the generated training images; larger than --crop so G learns on a torus wider than
    its receptive field, as at inference (a 1024² texture is drawn at 256²)"""
    image_size: int = 256
    """training images are resized so their longer side is at most this"""
    photos: bool = False
    """the training images are photos that do not tile: real crops stay inside them instead of wrapping
    around (what `tessera learn` trains on); without it the images are taken as tileable textures, whose
    wrap-around crops are also a roll augmentation"""
    align: bool = False
    """turn training images whose stripes run vertically (planks, grain, bark) by 90°, so that a style
    learns one orientation instead of a crosshatch of both; rotate the texture in the material if needed"""
    style_weights: str | None = None
    """draw some styles more often than others, e.g. brick=3,paving=2 (the rest 1): more steps for
    the styles that are still learning their structure"""
    style_init: str | None = None
    """with --init: new styles that start at the embedding of a style of the start instead of the mean,
    e.g. asphalt=concrete,stone_wall=brick"""
    per_image: bool = False
    """give every training image its own embedding, a style being the set of them, so that a seed draws one
    coherent material instead of a blend of the style's images: image i of style c is embedded as style[c] plus
    a linear map of its 13 descriptors (colour means and spreads, spectral power in five bands of period,
    anisotropy: core.descriptors), standardised with this run's training set; D's projection gets a per-image
    term the same way, and each fake is paired with a real crop's style and image. Both new maps start at
    zero, so --init from a run without it starts as the same G and D; export then writes every image's
    embedding, of which a seed picks one per style"""
    augment: str = ""
    """differentiable augmentation of everything D sees, real and generated alike (DiffAugment, Zhao et
    al. 2020): a comma-separated subset of color,translation,cutout; translation is a roll on the torus"""
    widths: tuple[int, ...] = (256, 192, 128, 64, 32)
    """generator channels per resolution, coarse to fine"""
    fine_waves: int = 8
    """periodic wave channels at half the output resolution, for courses, planks and joints (0: none)"""
    layouts: int = 0
    """masonry-like lattices drawn per seed and added at half the output resolution (core.noise.LATTICES:
    1 running bond, 2 and stack bond, 3 and planks; 0: none), so brick, tiles and boards have joints to
    draw on; --init from a run without them starts as the same G (their amplitudes start at zero)"""
    layout_styles: str | None = None
    """with --layouts: only these styles see the lattices, e.g. brick,tiles,wood (default: all); the rest get
    none, so they cannot learn to draw the lattices' per-unit blocks. A run from --init does not inherit it
    from its start: name the styles again"""
    d_width: int = 32
    """discriminator channels at full resolution (doubling as it goes down, at most 256); --init from a
    narrower D grows it so that it starts as the same function (new channels are read with zero weights)"""
    d_levels: int = 4
    """discriminator downsampling stages; any --crop ≥ 2**levels works, so the crop can grow on --resume"""
    d_pool: str = "mean"
    """how D's head pools its last features over the crop: mean, or meanstd (mean and standard deviation
    side by side, as the realism test's critic does: the spread of a feature is much of what tells two
    textures apart); --init from a mean-pooled D starts the std half at zero, so D starts as the same
    function"""
    d_norm: str = "spectral"
    """how D's layers are kept in check: spectral (spectral norm on every layer, Miyato et al. 2018, plus
    R1) or none (R1 alone, as in StyleGAN2); --init from a spectral D into none divides each weight by its
    spectral norm, so D starts as the same function, free to grow its gain"""
    lr: float = 2e-4
    """Adam learning rate of G (and of D unless --d-lr is given)"""
    style_lr: float | None = None
    """Adam learning rate of G's style embeddings (default: --lr). Adam moves a parameter about its learning
    rate per step it gets a gradient, and a style's row gets one only in the steps whose batch draws that
    style (about a third of them with 19 styles and batch 8), so new styles started from another style's
    embedding (--style-init) stay near it for thousands of steps at 2e-4; 10× that lets them find their
    own look"""
    d_lr: float | None = None
    """Adam learning rate of D (default: --lr); a larger one is the two time-scale update rule (TTUR,
    Heusel et al. 2017), for a D whose loss sits near chance"""
    r1: float = 1.0
    r1_every: int = 4
    ema: float = 0.999

    def __post_init__(self) -> None:
        super().__post_init__()
        self.init = None if self.init is None else Path(self.init)
        if self.init is not None and self.resume:
            raise ValueError("--init starts a new run from another one; --resume continues this one: pick one")
        if self.style_init is not None:
            if self.init is None:
                raise ValueError("--style-init names styles of the --init start: give --init too")
            parse_pairs(self.style_init)
        if self.style_weights is not None:
            parse_weights(self.style_weights)
        if self.d_pool not in D_POOLS:
            raise ValueError(f"--d-pool {self.d_pool}: choose from {', '.join(D_POOLS)}")
        if self.d_norm not in D_NORMS:
            raise ValueError(f"--d-norm {self.d_norm}: choose from {', '.join(D_NORMS)}")
        if self.fine_waves < 0:
            raise ValueError(f"--fine-waves {self.fine_waves} must be ≥ 0")
        if not 0 <= self.layouts <= LATTICE_KINDS:
            raise ValueError(f"--layouts {self.layouts} must be 0 … {LATTICE_KINDS}")
        if self.layout_styles is not None and not self.layouts:
            raise ValueError("--layout-styles names the styles that see the layouts: give --layouts too")
        unknown = sorted(set(filter(None, self.augment.split(","))) - set(AUGMENTS))
        if unknown:
            raise ValueError(f"--augment {','.join(unknown)}: choose from {','.join(AUGMENTS)}")
        for name, value in (("--lr", self.lr), ("--style-lr", self.style_lr), ("--d-lr", self.d_lr)):
            if value is not None and not 0 < value < 1:
                raise ValueError(f"{name} {value} must be between 0 and 1 (e.g. 2e-4)")
        if self.batch < 1:
            raise ValueError(f"--batch {self.batch} must be ≥ 1")
        stride = 2 ** (len(self.widths) - 1)
        if self.g_size % stride or self.g_size < 2 * stride:
            raise ValueError(f"--g-size {self.g_size} must be a multiple of {stride} and at least {2 * stride}")
        if not 0 < self.crop <= self.g_size:
            raise ValueError(f"--crop {self.crop} must be between 1 and --g-size {self.g_size}")
        if self.crop < 2 ** self.d_levels:
            raise ValueError(f"--crop {self.crop} must be at least 2**--d-levels = {2 ** self.d_levels}")


AUGMENTS = ("color", "translation", "cutout")
D_NORMS = ("spectral", "none")
D_POOLS = ("mean", "meanstd")


def diff_augment(x: torch.Tensor, policy: str, g: torch.Generator) -> torch.Tensor:
    """Differentiable augmentation (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN
    Training", NeurIPS 2020), applied alike to real and generated images before D in both steps, so D
    cannot memorise a small training set while G still learns the un-augmented distribution.

    x: (B, 3, H, W) float in [-1, 1] (gradients flow through). policy: comma-separated subset of AUGMENTS:
    color — per image brightness ±0.5, saturation ×0…2, contrast ×0.5…1.5; translation — a roll by up to
    1/8 of the side (a translation without a border to fill; D's crops are not periodic, so the roll puts
    a seam inside the crop, alike for real and generated ones); cutout — a
    square of half the side, wrapping around the torus, set to 0. → same shape and dtype; an empty policy
    returns x itself and draws nothing from `g`.
    """
    ops = set(filter(None, policy.split(",")))
    b, _, h, w = x.shape

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g).to(x.device, x.dtype)

    if "color" in ops:
        x = x + (rand(b, 1, 1, 1) - 0.5)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (rand(b, 1, 1, 1) * 2) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (rand(b, 1, 1, 1) + 0.5) + mean
    if "translation" in ops:
        shifts = torch.randint(-(h // 8), h // 8 + 1, (b, 2), generator=g).tolist()
        x = torch.stack([xi.roll((dy, dx), dims=(1, 2)) for xi, (dy, dx) in zip(x, shifts)])
    if "cutout" in ops:
        ys = (torch.arange(h)[None, :] - torch.randint(0, h, (b, 1), generator=g)) % h < h // 2
        xs = (torch.arange(w)[None, :] - torch.randint(0, w, (b, 1), generator=g)) % w < w // 2
        keep = ~(ys[:, :, None] & xs[:, None, :])
        x = x * keep[:, None].to(x.device, x.dtype)
    return x


def parse_pairs(spec: str) -> dict[str, str]:
    """'asphalt=concrete,stone_wall=brick' → {'asphalt': 'concrete', ...}; a malformed entry is a one-line
    error."""
    out = {}
    for item in spec.split(","):
        new, _, old = (part.strip() for part in item.partition("="))
        if not new or not old:
            raise ValueError(f"--style-init: {item!r} is not NEW=STYLE (e.g. asphalt=concrete)")
        out[new] = old
    return out


def parse_weights(spec: str) -> dict[str, float]:
    """'brick=3,paving=2' → {'brick': 3.0, 'paving': 2.0}; a malformed entry is a one-line error."""
    out = {}
    for item in spec.split(","):
        name, _, value = item.partition("=")
        try:
            w = float(value)
        except ValueError:
            w = -1.0
        if not name.strip() or not 0 <= w < float("inf"):
            raise ValueError(f"--style-weights: {item!r} is not STYLE=WEIGHT with a finite weight ≥ 0 "
                             "(e.g. brick=3,paving=2)")
        out[name.strip()] = w
    return out


def style_weights(spec: str | None, styles: list[str]) -> torch.Tensor | None:
    """Sampling weight per style (1 unless named in `spec`), or None for uniform."""
    if spec is None:
        return None
    named = parse_weights(spec)
    unknown = sorted(set(named) - set(styles))
    if unknown:
        raise ValueError(f"--style-weights: unknown style {', '.join(unknown)}; the styles are {', '.join(styles)}")
    w = torch.tensor([named.get(s, 1.0) for s in styles])
    if w.sum() <= 0:
        raise ValueError("--style-weights: at least one style needs a weight > 0")
    return w


def style_indices(spec: str | None, styles: list[str]) -> tuple[int, ...] | None:
    """'brick,wood' → the indices of those styles in `styles`, in order; '' → () (no style); None → None
    (every style). An unknown name is a one-line error."""
    if spec is None:
        return None
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in styles]
    if unknown:
        raise ValueError(f"--layout-styles: unknown style {', '.join(map(repr, unknown))}; the styles are "
                         f"{', '.join(styles)}")
    return tuple(sorted({styles.index(name) for name in names}))


class Discriminator(nn.Module):
    """Strided conv net; projection conditioning on the style (Miyato & Koyama 2018).

    With `spectral` every layer is spectrally normalised (Miyato et al. 2018). That bounds D's gain: the
    logits of a shallow, mean-pooled net stay small, and in our runs the hinge loss sat near 2.0 (chance)
    for thousands of steps. Without it (`spectral=False`) R1 alone keeps D in check, as in StyleGAN2.
    Kept shallow either way; fully convolutional, pooled over the crop (the mean of each feature, or with
    `pool="meanstd"` its standard deviation beside it), so it judges patches of any crop ≥ 2**levels.
    """

    def __init__(self, styles: int, width: int = 32, levels: int = 4, spectral: bool = True, pool: str = "mean",
                 descriptor_dim: int = 0):
        super().__init__()
        self.pool = pool
        norm = spectral_norm if spectral else (lambda m: m)
        layers: list[nn.Module] = [norm(nn.Conv2d(3, width, 3, padding=1)), nn.LeakyReLU(0.2)]
        c = width
        for _ in range(levels):
            c2 = min(c * 2, 256)
            layers += [norm(nn.Conv2d(c, c2, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            c = c2
        self.features = nn.Sequential(*layers)
        pooled = 2 * c if pool == "meanstd" else c
        self.linear = norm(nn.Linear(pooled, 1))
        self.embed = norm(nn.Embedding(styles, pooled))
        self.image_embed = None
        if descriptor_dim:  # per image: zero at first, and never spectral (the σ of a zero matrix is 0)
            self.image_embed = nn.Linear(descriptor_dim, pooled, bias=False)
            nn.init.zeros_(self.image_embed.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor, descriptors: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1], style labels (B,) int64 and, for a per-image D, each image's
        standardised descriptors (B, descriptor_dim) → logits (B,)."""
        f = self.features(x)
        h = f.mean(dim=(2, 3))
        if self.pool == "meanstd":
            h = torch.cat([h, (f.var(dim=(2, 3), unbiased=False) + 1e-8).sqrt()], dim=1)
        logit = self.linear(h).squeeze(1) + (self.embed(labels) * h).sum(1)
        if self.image_embed is not None:
            assert descriptors is not None, "this D is per image: pass the descriptors"
            logit = logit + (self.image_embed(descriptors.to(h.dtype)) * h).sum(1)
        return logit


def unspectral(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A spectrally normalised module's state → the plain module's: every `X.weight_orig` becomes
    `X.weight` = weight_orig / σ, with σ = uᵀ W v from its power-iteration vectors (what the normalised
    layer divided by in its last forward pass), or the exact largest singular value where they are missing;
    the vectors are dropped. Other tensors pass unchanged."""
    out = {k: v for k, v in state.items() if not k.endswith(("weight_u", "weight_v"))}
    for key in [k for k in state if k.endswith("weight_orig")]:
        base = key[:-len("_orig")]
        w = out.pop(key)
        mat = w.flatten(1).double()
        u, v = state.get(f"{base}_u"), state.get(f"{base}_v")
        if u is not None and v is not None and u.shape[0] == mat.shape[0] and v.shape[0] == mat.shape[1]:
            sigma = torch.dot(u.double(), mat @ v.double())
        else:
            sigma = torch.linalg.matrix_norm(mat, ord=2)
        out[base] = (w.double() / sigma).to(w.dtype)
    return out


def init_from(path: Path, styles: list[str], modules: dict[str, nn.Module],
              starts: dict[str, str] | None = None) -> tuple[int, float, str]:
    """Load a run folder's G, D and G_ema, or an exported generator file into G and G_ema, matching
    styles by name (see GanConfig.init); `starts` {new style: style of the start} seeds new styles from
    chosen ones instead of the mean → (step, wall time, what was new). Raises ValueError for a start that
    is not a generator or gan run, or `starts` naming a style that is not new or not in the start."""
    from core import weights

    if path.is_file():
        meta, tensors = weights.read(path)
        if meta.get("kind") != "generator":
            raise ValueError(f"--init {path}: an exported generator or a gan run folder is needed (it holds "
                             f"{meta.get('kind')!r})")
        old_styles, training = meta["styles"], meta.get("training", {})
        step, wall = int(training.get("steps", 0)), float(training.get("wall_time_s", 0.0))
        tensors = {k: v for k, v in tensors.items() if k not in weights.MEMBER_TENSORS}  # not the model's
        parts = {"G": tensors, "G_ema": tensors}
    else:
        meta, tensors, _ = checkpoint.load(path, "--init takes the --out folder of an earlier gan run or an "
                                                 "exported generator file")
        if meta.get("kind") != "gan":
            raise ValueError(f"--init {path}: a gan checkpoint is needed (it holds {meta.get('kind')!r})")
        old_styles, step, wall = meta["styles"], meta["step"], meta["wall_time_s"]
        parts = {name: {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(f"{name}.")}
                 for name in modules}
    new = [s for s in styles if s not in old_styles]
    starts = starts or {}
    for target, source in starts.items():
        if target not in new or source not in old_styles:
            raise ValueError(f"--style-init {target}={source}: name a new style ({', '.join(new) or 'none'}) and "
                             f"a style of {path} ({', '.join(old_styles)})")
    order = [starts.get(s, s) for s in styles]  # where each style's rows come from
    added = set()
    for name, state in parts.items():
        own = modules[name].state_dict()
        # a spectrally normalised D loaded into a plain one (--d-norm none)
        plain = any(k.endswith("weight_orig") for k in state) and not any(k.endswith("weight_orig") for k in own)
        state = {k: _restyle(k, v, plain or k in own, old_styles, order) for k, v in state.items()}
        state = {k: v for k, v in state.items() if v is not None}
        if plain:
            state = unspectral(state)
        state = {k: _widen(k, v, own.get(k)) for k, v in state.items()}
        if name == "D":  # a wider D (--d-width) starts as the same function
            grown = {k: _grow(k, v, own.get(k)) for k, v in state.items()}
            state = {k: v for k, v in grown.items() if v is not None}
        added |= checkpoint.restore_module(modules[name], name, {f"{name}.{k}": v for k, v in state.items()},
                                           strict=False)
    seeded = [f"{s} from {starts[s]}" if s in starts else f"{s} from the mean" for s in new]
    layers = ", ".join(sorted(added)) or "none"
    return step, wall, f"new styles: {', '.join(seeded) or 'none'}; new layers: {layers}"


# one row per style: G's embedding, D's projection (spectrally normalised, or plain with --d-norm none)
STYLE_TENSORS = ("style.weight", "embed.weight_orig", "embed.weight")
STYLE_VECTORS = ("embed.weight_u",)  # spectral norm's power-iteration vector over D's style rows


def _restyle(key: str, old: torch.Tensor, present: bool, old_styles: list[str],
             styles: list[str]) -> torch.Tensor | None:
    """A per-style tensor (STYLE_TENSORS) rearranged from old_styles' order to `styles` (each the name of
    the row to take); a name the start lacks gets the mean row. A style vector (STYLE_VECTORS) of a
    rearranged table is dropped (None: the module keeps its own, which converges again within a few steps).
    Every other tensor passes unchanged."""
    if not present or old_styles == styles:
        return old
    if key in STYLE_VECTORS:
        return None
    if key not in STYLE_TENSORS:
        return old
    rows = [old[old_styles.index(s)] if s in old_styles else old.mean(0) for s in styles]
    return torch.stack(rows).to(old.dtype)


D_HEAD = ("linear.weight", "linear.weight_orig", "linear.weight_v", "embed.weight", "embed.weight_orig",
          "embed.weight_v", "image_embed.weight")  # what reads D's pooled features: wider with --d-pool meanstd
D_HEAD_ROWS = ("image_embed.weight",)  # (pooled, descriptor_dim): the pooled features are its rows


def _widen(key: str, old: torch.Tensor, own: torch.Tensor | None) -> torch.Tensor:
    """A D head tensor (D_HEAD) of a mean-pooled D, zero-padded in its pooled dimension (the last one; the
    first for D_HEAD_ROWS) to a meanstd D's width: the std half starts silent. Every other tensor passes
    unchanged."""
    axis = 0 if key in D_HEAD_ROWS else old.dim() - 1
    if key not in D_HEAD or own is None or old.shape == own.shape or old.dim() != own.dim() \
            or any(a != b for i, (a, b) in enumerate(zip(old.shape, own.shape)) if i != axis):
        return old
    if old.shape[axis] > own.shape[axis]:
        raise ValueError(f"--init: D's {key} is {tuple(old.shape)}, wider than this run's {tuple(own.shape)}: a "
                         "meanstd D cannot start a mean-pooled one")
    pad = [0, 0] * old.dim()
    pad[2 * (old.dim() - 1 - axis) + 1] = own.shape[axis] - old.shape[axis]
    return F.pad(old, pad)


def _grow(key: str, old: torch.Tensor, own: torch.Tensor | None) -> torch.Tensor | None:
    """A convolution of a narrower D (--d-width) grown to this D's width so that D computes the same logits:
    the old channels keep their weights and ignore the new input channels (zero there), the new output
    channels keep their fresh random weights (so they learn: their own inputs are live, and the layer after
    reads them through weights that start at zero but get gradients). Biases keep the old values first.
    Spectral norm's power-iteration vectors of a grown layer are dropped (None: the module keeps its own);
    with spectral norm the grown layer's σ changes, so only a plain D (--d-norm none) starts exactly the same.
    Every other tensor passes unchanged."""
    if own is None or old.shape == own.shape or not key.startswith("features."):
        return old
    if key.endswith(("weight_u", "weight_v")):
        return None
    if old.dim() != own.dim() or old.shape[2:] != own.shape[2:] or any(a > b for a, b in zip(old.shape, own.shape)):
        raise ValueError(f"--init: D's {key} is {tuple(old.shape)}, which does not grow into this run's "
                         f"{tuple(own.shape)}: --d-width can grow, not shrink, and --d-levels must match")
    new = own.detach().clone().to(old.dtype)
    if old.dim() == 1:
        new[:old.shape[0]] = old
    else:
        new[:old.shape[0], :old.shape[1]] = old
        new[:old.shape[0], old.shape[1]:] = 0
    return new


def wrap_crops(x: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """One random size×size crop per image, wrapping around its torus: the seam can land anywhere."""
    _, _, h, w = x.shape
    shifts = torch.randint(0, max(h, w), (x.shape[0], 2), generator=g).tolist()
    return torch.stack([xi.roll((dy % h, dx % w), dims=(1, 2))[:, :size, :size] for xi, (dy, dx) in zip(x, shifts)])


def g_param_groups(G: TextureGenerator, cfg: GanConfig) -> list[dict]:
    """G's parameters for Adam: one group at --lr, or with --style-lr the style embeddings in a group of
    their own at that rate (the rest in G's order, so a run without it keeps one group as before)."""
    if cfg.style_lr is None:
        return [{"params": list(G.parameters())}]
    rest = [p for p in G.parameters() if p is not G.style.weight]
    return [{"params": rest}, {"params": [G.style.weight], "lr": cfg.style_lr}]


def train(cfg: GanConfig, on_step: Callable[[Clock], bool] | None = None) -> Path:
    """Train as `cfg` says → the last checkpoint. `on_step(clock)` after each step (a host's progress):
    returning False stops the run there, checkpointed as at its end."""
    check_can_write(cfg.out, cfg.out)  # a read-only or impossible --out fails now, not at step 10
    d = setup(cfg.device)
    torch.manual_seed(cfg.seed + d.rank)
    g_data = torch.Generator().manual_seed(cfg.seed * 1000 + d.rank)
    g_noise = torch.Generator().manual_seed(cfg.seed * 1000 + 500 + d.rank)

    data = StyleImages.from_folder(cfg.data, cfg.image_size, cfg.align, describe=cfg.per_image,
                                   hint=f"put images in {cfg.data}/<style>/ subfolders", check_names=True)
    weights = style_weights(cfg.style_weights, data.styles)
    k = descriptors.DIM if cfg.per_image else 0
    gcfg = GeneratorConfig(styles=len(data.styles), widths=cfg.widths, fine_periodic_dim=cfg.fine_waves,
                           descriptor_dim=k, layouts=cfg.layouts,
                           layout_styles=style_indices(cfg.layout_styles, data.styles))
    G = TextureGenerator(gcfg).to(d.device)
    D = Discriminator(len(data.styles), cfg.d_width, cfg.d_levels, cfg.d_norm == "spectral", cfg.d_pool,
                      k).to(d.device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(g_param_groups(G, cfg), lr=cfg.lr, betas=(0.0, 0.99))
    d_lr = cfg.lr if cfg.d_lr is None else cfg.d_lr
    opt_d = torch.optim.Adam(D.parameters(), lr=d_lr, betas=(0.0, 0.99))

    step, wall = 0, 0.0
    stats: dict[str, list[float]] | None = None
    if cfg.resume:
        meta, tensors, header = checkpoint.load(cfg.out)
        if meta["styles"] != data.styles:
            raise ValueError(f"--resume: checkpoint styles {meta['styles']} differ from {data.styles} in {cfg.data}")
        if GeneratorConfig(**meta["generator"]) != gcfg:
            raise ValueError(f"--resume: checkpoint generator {meta['generator']} differs from {gcfg.to_dict()}: "
                             f"pass its --widths, --fine-waves, --layouts, --layout-styles and --per-image, or start a "
                             f"new run from it with --init")
        for name, m in (("G", G), ("D", D), ("G_ema", G_ema)):
            checkpoint.restore_module(m, name, tensors)
        saved = len(json.loads(header["opt_g.param_groups"]))
        if saved != len(opt_g.param_groups):
            given = "without --style-lr" if saved == 1 else "with --style-lr"
            raise ValueError(f"--resume: this run was trained {given}: pass it the same way, or start a new run "
                             f"from it with --init")
        checkpoint.restore_optimizer(opt_g, "opt_g", tensors, header, [g["lr"] for g in opt_g.param_groups])
        checkpoint.restore_optimizer(opt_d, "opt_d", tensors, header, d_lr)
        for name, gen in (("g_data", g_data), ("g_noise", g_noise)):
            if f"extra.{name}{d.rank}" in tensors:  # rank 0's streams; other ranks keep their fresh seeds
                gen.set_state(checkpoint.extra(tensors, f"{name}{d.rank}"))
        step, wall = meta["step"], meta["wall_time_s"]
        stats = meta.get("descriptors")
    elif cfg.init is not None:
        starts = parse_pairs(cfg.style_init) if cfg.style_init else None
        step, wall, msg = init_from(cfg.init, data.styles, {"G": G, "D": D, "G_ema": G_ema}, starts)
        if d.main:
            print(f"gan: starting from {cfg.init} at step {step}; {msg}")
    if d.main and not cfg.resume and (cfg.out / checkpoint.LAST).exists():
        raise ValueError(f"{cfg.out} already holds a checkpoint: pass --resume to continue it, or choose another --out")

    # Per image: the descriptors are standardised with statistics fixed once per run (a resumed run keeps its
    # own), which export stores, so any later image maps into the units image_code learned in.
    desc = None
    if data.descriptors is not None:
        if stats is None:
            mean, std = descriptors.fit(data.descriptors)
            stats = {"mean": mean.tolist(), "std": std.tolist()}
        mean, std = (np.asarray(stats[key], dtype=np.float32) for key in ("mean", "std"))
        desc = torch.from_numpy(descriptors.standardise(data.descriptors, mean, std)).to(d.device)

    # Data-parallel: each rank draws its own batch; DDP averages gradients.
    G_train = DDP(G) if d.world > 1 else G
    D_train = DDP(D, broadcast_buffers=False) if d.world > 1 else D
    cells = (cfg.g_size // gcfg.stride,) * 2
    eye = torch.eye(len(data.styles), device=d.device)

    if d.main:
        cfg.out.mkdir(parents=True, exist_ok=True)
        (cfg.out / "samples").mkdir(exist_ok=True)
        print(f"gan: {len(data)} images in {len(data.styles)} styles ({', '.join(data.styles)}); "
              f"{sum(p.numel() for p in G.parameters()) / 1e6:.2f}M G params; {d.world} process(es) on {d.device}"
              + (f"; --align turned {data.turned} image(s) by 90°" if cfg.align else ""))

    def save() -> None:
        if not d.main:
            return
        meta = {"kind": "gan", "step": clock.step, "wall_time_s": clock.wall, "styles": data.styles,
                "generator": gcfg.to_dict(), "train": config_record(cfg),
                "sources": data.sources, "hardware": hardware(d)}
        extra = {"g_data0": g_data.get_state(), "g_noise0": g_noise.get_state()}
        if data.descriptors is not None:  # what export needs for the members: each image's φ and style
            meta["descriptors"] = stats
            extra |= {"descriptors": torch.from_numpy(data.descriptors), "image_styles": data.image_styles}
        checkpoint.save(cfg.out, {"G": G, "D": D, "G_ema": G_ema}, {"opt_g": opt_g, "opt_d": opt_d}, meta, extra)

    def sample(step_now: int) -> None:
        if not d.main:
            return
        g = torch.Generator().manual_seed(1234)
        n = 2
        phi = None
        if desc is not None:  # each style's first n members (its images in order, repeated if it has fewer)
            first = np.cumsum([0] + [len(imgs) for imgs in data.images])
            phi = desc[[int(first[c]) + j % len(imgs) for c, imgs in enumerate(data.images) for j in range(n)]]
        with torch.no_grad():
            imgs = G_ema(eye.repeat_interleave(n, 0), cells, g, phi).float().cpu() * 0.5 + 0.5
        imgs = imgs.repeat(1, 1, 2, 2)  # show each tiled 2×2: seams would show here
        write_png(cfg.out / "samples" / f"step_{step_now:07d}.png", grid(imgs, 2 * n))

    clock = Clock(step, cfg.steps, cfg.minutes, wall)
    bar = progress(clock, "gan", d.main and on_step is None)  # a host (learn) shows its own
    r1 = torch.zeros((), device=d.device)  # the last computed R1 (it is lazy), for the log
    while clock.running():
        real, labels, index = data.sample_indexed(cfg.batch, cfg.crop, g_data, wrap=not cfg.photos, weights=weights)
        real, labels = (real * 2 - 1).to(d.device), labels.to(d.device)
        w = eye[labels]
        phi = None if desc is None else desc[index.to(d.device)]  # paired: each fake has its real's image

        # D step: hinge loss on real vs wrap-around crops of fakes; every r1_every steps, R1 on reals (lazy).
        D.requires_grad_(True)
        with torch.no_grad(), autocast(d, cfg.bf16):
            fake = G(w, cells, g_noise, phi)
        do_r1 = cfg.r1 > 0 and clock.step % cfg.r1_every == 0
        real.requires_grad_(do_r1)
        with autocast(d, cfg.bf16):
            seen = torch.cat([real, wrap_crops(fake.float(), cfg.crop, g_noise)])
            logits = D_train(diff_augment(seen, cfg.augment, g_noise), torch.cat([labels, labels]),
                             None if phi is None else torch.cat([phi, phi]))
        lr_, lf = logits.float().chunk(2)
        loss_d = F.relu(1 - lr_).mean() + F.relu(1 + lf).mean()
        if do_r1:
            (grad,) = torch.autograd.grad(lr_.sum(), real, create_graph=True)
            r1 = grad.pow(2).sum(dim=(1, 2, 3)).mean()
            loss_d = loss_d + cfg.r1 * 0.5 * cfg.r1_every * r1
            r1 = r1.detach()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        # G step: D (not synchronised, not updated) judges wrap-around crops of fakes.
        D.requires_grad_(False)
        with autocast(d, cfg.bf16):
            fake = G_train(w, cells, g_noise, phi)
            seen = wrap_crops(fake, cfg.crop, g_noise)
            loss_g = -D(diff_augment(seen, cfg.augment, g_noise), labels, phi).float().mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            ema_update(G_ema, G, cfg.ema, clock.step)

        end_step(cfg, d, clock, bar, cfg.batch * d.world, save=save, sample=sample,
                 losses={"loss_d": loss_d, "loss_g": loss_g, "r1": r1})
        if on_step is not None and not on_step(clock):
            break
    bar.close()
    save()
    sample(clock.step)
    teardown(d)
    return cfg.out / checkpoint.LAST
