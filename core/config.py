"""The models' configurations, importable without torch.

A weights file stores its model's config as JSON (core.weights); `GeneratorConfig.from_meta` and
`UpscalerConfig(**config)` rebuild it. The PyTorch models (core.generator, core.upscaler) and the
torch-free runtime (core.runtime) read the same classes, so both agree on every derived size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


LATTICE_KINDS = 3    # layout lattices core.noise knows: running bond, stack bond, planks
LAYOUT_CHANNELS = 3  # per lattice: cos 2π(row coordinate), cos 2π(unit coordinate), a value per unit


@dataclass
class GeneratorConfig:
    styles: int = 8            # number of style embeddings
    style_dim: int = 64        # width of a style embedding
    local_dim: int = 16        # i.i.d. noise channels per cell
    global_dim: int = 16       # per-seed global noise channels
    periodic_dim: int = 8      # periodic wave channels
    widths: tuple[int, ...] = (256, 192, 128, 64, 32)  # channels at cell resolution, then after each ×2
    upsample: str = "bilinear"  # on the torus; "nearest" (files before 0.2) leaves a faint grid at the cell size
    fine_periodic_dim: int = 0  # waves added at `fine_level` (0 in files before 0.3)
    fine_level: int = -1        # the ×2 level they join (1 … len(widths) - 1); -1: the one before the last
    descriptor_dim: int = 0     # per-image conditioning: width of the image descriptors (core.descriptors); 0: none
    layouts: int = 0            # layout lattices added at `fine_level` (core.noise.LATTICES; 0: none)
    layout_styles: tuple[int, ...] | None = None  # the styles (indices) that see the layouts; None: all

    def __post_init__(self) -> None:
        self.widths = tuple(self.widths)
        assert len(self.widths) >= 2, "need at least one upsampling stage"
        assert self.upsample in ("bilinear", "nearest"), f"unknown upsampling {self.upsample!r}"
        if self.fine_level < 0:
            self.fine_level = max(1, len(self.widths) - 2)
        assert 1 <= self.fine_level < len(self.widths), f"fine_level {self.fine_level} is not a ×2 level"
        assert self.descriptor_dim >= 0, f"descriptor_dim {self.descriptor_dim} must be ≥ 0"
        assert 0 <= self.layouts <= LATTICE_KINDS, f"layouts {self.layouts} is not 0 … {LATTICE_KINDS}"
        if self.layout_styles is not None:
            self.layout_styles = tuple(self.layout_styles)
            assert self.layouts, "layout_styles without layouts"
            assert list(self.layout_styles) == sorted(set(self.layout_styles)) and \
                all(0 <= i < self.styles for i in self.layout_styles), \
                f"layout_styles {self.layout_styles} are not distinct style indices 0 … {self.styles - 1} in order"

    @classmethod
    def from_meta(cls, config: dict[str, Any]) -> GeneratorConfig:
        """The config a weights file's "config" entry describes; files that predate `upsample` used nearest.
        Raises TypeError for an unknown field and AssertionError for an inconsistent one."""
        return cls(**{"upsample": "nearest", **config})

    @property
    def stride(self) -> int:
        return 2 ** (len(self.widths) - 1)

    @property
    def head_noise_dim(self) -> int:
        return self.local_dim + self.global_dim + self.periodic_dim

    @property
    def noise_dim(self) -> int:
        """Channels of the noise grid: the head's, then one per-pixel detail map for every ×2 level,
        stored pixel-unshuffled (4**level channels per cell), so rolling or tiling the grid rolls or
        tiles every level's map with it; then the fine waves and the layout channels, stored the same way."""
        return self.head_noise_dim + self.detail_dim + (self.fine_periodic_dim + self.layout_dim) * 4 ** self.fine_level

    @property
    def layout_dim(self) -> int:
        """Channels of the layout (LAYOUT_CHANNELS per lattice), at `fine_level`."""
        return LAYOUT_CHANNELS * self.layouts

    @property
    def detail_dim(self) -> int:
        return sum(4 ** level for level in range(1, len(self.widths)))

    def layout_gate(self, weights: Sequence[float]) -> float:
        """How much of the layouts a style mix sees: the share of its mixing `weights` (one per style, summing
        to 1) on `layout_styles`, in [0, 1]; 1 when every style sees them (`layout_styles` None). A seed's
        layout channels are scaled by it before the generator reads them, so a style outside `layout_styles`
        gets none and cannot draw blocks from them, whatever amplitude it learned."""
        if self.layout_styles is None:
            return 1.0
        return float(sum(weights[i] for i in self.layout_styles))

    def to_dict(self) -> dict:
        """The fields as a dict; `descriptor_dim`, `layouts` and `layout_styles` only when set, so a generator
        without them writes the config (and has the graph name and file header) it had before those fields."""
        d = asdict(self)
        for optional in ("descriptor_dim", "layouts"):
            if not d[optional]:
                del d[optional]
        if self.layout_styles is None:
            del d["layout_styles"]
        return d


@dataclass
class UpscalerConfig:
    scale: int = 4       # 2 or 4
    channels: int = 32   # SRResNet uses 64
    blocks: int = 4      # SRResNet uses 16
    noise: int = 0       # channels of per-pixel noise the last stage reads (core.upscaler; 0: none)
    grain: bool = False  # the noise (4 channels) is grain added to the output, not read by the last stage

    def __post_init__(self) -> None:
        assert self.scale in (2, 4), f"scale must be 2 or 4, got {self.scale}"
        assert self.channels >= 2 and self.channels % 2 == 0, f"channels must be even, got {self.channels}"
        assert self.noise >= 0, f"noise channels must be ≥ 0, got {self.noise}"
        assert not self.grain or self.noise == 4, f"grain takes 4 noise channels, got {self.noise}"

    def to_dict(self) -> dict:
        """The fields as a dict; `noise` and `grain` only when set, so an upscaler without them writes the
        config (and has the graph name and file header) it had before the fields."""
        d = asdict(self)
        for key in ("noise", "grain"):
            if not d[key]:
                del d[key]
        return d

    @property
    def noise_scale(self) -> int:
        """The noise's resolution in multiples of the input's: that of the last stage (scale / 2)."""
        return self.scale // 2

    @property
    def context(self) -> int:
        """Low-res pixels of context a tile needs so its centre equals a full pass.

        Each 3×3 conv at low resolution reaches one pixel further; a conv after a ×2 stage reaches
        half a low-res pixel. Two more for the bicubic skip, and round up.
        """
        lr_convs = 2 + 2 * self.blocks + 1
        hr_reach = sum(0.5 ** i for i in range(1, self.scale.bit_length() - 1))
        return int(lr_convs + hr_reach + 2) + 1
