"""core.eval: the measurements behind the model card, run on tiny random models and a tiny dataset.

Speed and the 4096² memory run are not exercised here (they are benchmarks); the card's rows are
checked for marking each target from the numbers they are given.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core import eval as ev
from core import realism
from core import load_generator
from training_helpers import smooth_noise, stripes, write_png


@pytest.fixture
def gen(tiny_models: Path):
    return load_generator(device="cpu", models_dir=tiny_models)


@pytest.fixture
def curated(tmp_path: Path) -> Path:
    """The layout `python -m training data` writes: {gan,detail}/{train,val}/STYLE and hr/val/STYLE."""
    root = tmp_path / "curated"
    for i in range(2):
        write_png(root / "gan" / "val" / "brick" / f"v{i}.png", stripes(160, 160, 8 + 4 * i))
        write_png(root / "gan" / "val" / "grass" / f"v{i}.png", smooth_noise(10 + i, 160, 160))
        write_png(root / "gan" / "train" / "grass" / f"t{i}.png", smooth_noise(20 + i, 160, 160))
        write_png(root / "hr" / "val" / "grass" / f"h{i}.png", smooth_noise(30 + i, 96, 96, cutoff=0.05))
        write_png(root / "detail" / "val" / "grass" / f"d{i}.png", smooth_noise(40 + i, 128, 128, cutoff=0.05))
        write_png(root / "detail" / "train" / "grass" / f"e{i}.png", smooth_noise(50 + i, 128, 128, cutoff=0.05))
    return root


def test_upscaled_seams_equal_bicubic_for_a_silent_model_and_catch_a_block_grid(gen):
    model = gen.upscalers[2][0]
    with torch.no_grad():
        model.tail.weight.zero_()
        model.tail.bias.zero_()  # the residual is silent: the model is its wrap-around bicubic skip
    silent = ev.upscaled_seams(gen, 2, samples=4, size=64)
    assert silent["seam_ratio"] == pytest.approx(silent["seam_ratio_bicubic"], abs=1e-3)

    # Nearest neighbour is flat inside each 2×2 block, so every step, the wrap edge's included, sits
    # on a block boundary: the edge is about twice the mean interior difference.
    class Nearest(torch.nn.Module):
        cfg = model.cfg

        def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
            return F.interpolate(x, scale_factor=2, mode="nearest")

    gen.upscalers[2] = (Nearest(), *gen.upscalers[2][1:])
    blocky = ev.upscaled_seams(gen, 2, samples=4, size=64)
    assert blocky["seam_ratio"] > 1.5 > silent["seam_ratio"]


def test_measurements_fill_the_card_and_mark_each_target(gen, curated: Path, tmp_path: Path):
    m = {"date": "2026-01-01",
         "speed": {"size": 256, "runs": 1, "median_s": 0.5, "threads": 1, "device": "cpu", "machine": "test"},
         "tileability": ev.tileability(gen, samples=2, size=256),
         "upscaler_x4": ev.upscaler(gen, curated, 4),
         "swd": ev.swd(gen, curated, seeds=2, n_crops=8)}
    assert m["upscaler_x4"]["images"] == 2 and set(m["upscaler_x4"]["gain_db_by_style"]) == {"grass"}
    assert np.isfinite(m["upscaler_x4"]["psnr_gain_db"])
    assert set(m["swd"]) == {"brick", "grass"}
    assert "train_ratio" in m["swd"]["grass"] and "train_ratio" not in m["swd"]["brick"]
    assert all(r["ratio"] > 0 for r in m["swd"].values())

    def row(start: str) -> str:
        return next(line for line in ev.card_table(m).splitlines() if line.startswith(start))

    assert row("| 256² generation").endswith("| ≤ 1.5 s | yes |")
    m["speed"]["median_s"] = 2.0
    assert row("| 256² generation").endswith("| no |")
    m["upscaler_x4"] |= {"psnr_gain_db": 1.2, "seam_ratio": 1.01}
    assert row("| upscaler ×4 PSNR-Y gain").endswith("| ≥ +1.0 dB | yes |")
    assert row("| upscaler ×4 seam ratio, 20 GAN outputs upscaled |").endswith("| 0.95–1.05 | yes |")
    m["upscaler_x4"] |= {"psnr_gain_db": 0.4, "seam_ratio": 1.2}
    assert row("| upscaler ×4 PSNR-Y gain").endswith("| no |")
    assert row("| upscaler ×4 seam ratio").endswith("| no |")

    table = ev.card_table(m)
    for style, r in m["swd"].items():
        assert f"| {style} | {r['swd']:.1f} | {r['floor']:.1f} | {r['ratio']:.2f} |" in table

    card = tmp_path / "MODEL_CARD.md"
    card.write_text(f"# Card\n\nkept above\n\n{ev.CARD_START}\nold numbers\n{ev.CARD_END}\n\nkept below\n")
    ev.update_card(card, table)
    text = card.read_text()
    assert "old numbers" not in text and table in text
    assert text.startswith("# Card\n\nkept above\n") and text.endswith("\nkept below\n")


def test_only_update_replaces_its_sections_and_keeps_the_rest(gen, tiny_models: Path, curated: Path,
                                                               tmp_path: Path, capsys):
    """`--only S --update` measures S again into --json (the rest kept as measured, dated per section) and
    rewrites the card's tables, whose header names what was measured again; without --only, or without a
    full run to update, one line and exit 2, before any measuring."""
    saved = {"date": "2026-01-01",
             "speed": {"size": 256, "runs": 1, "median_s": 0.5, "threads": 1, "device": "cpu", "machine": "test"},
             "tileability": ev.tileability(gen, samples=2, size=256),
             "upscaler_x2": {"skipped": "old"}}
    js, card = tmp_path / "metrics.json", tmp_path / "MODEL_CARD.md"
    js.write_text(json.dumps(saved))
    card.write_text(f"# Card\n\n{ev.CARD_START}\nold numbers\n{ev.CARD_END}\n")
    args = ["--data", str(curated), "--models", str(tiny_models), "--json", str(js), "--card", str(card)]
    assert ev.main(args + ["--only", "upscaler_x2", "--update"]) == 0
    m = json.loads(js.read_text())
    assert m["date"] == "2026-01-01" and m["tileability"] == saved["tileability"]
    assert m["upscaler_x2"]["images"] == 2 and set(m["upscaler_x2"]["ssim_gain_by_style"]) == {"grass"}
    assert list(m["remeasured"]) == ["upscaler_x2"]
    text = card.read_text()
    assert "old numbers" not in text and "measured again since with `--only … --update`: upscaler_x2 " in text
    assert "| upscaler ×2 SSIM-Y gain per style | grass " in text
    from core.catalog import peek
    stored = json.loads(peek(tiny_models / "sr-x2-tiny.safetensors")["metrics"])  # the weights' headers too
    assert stored["upscaler_x2"] == m["upscaler_x2"]
    capsys.readouterr()
    assert ev.main(args + ["--update"]) == 2
    assert capsys.readouterr().err.strip() == "error: --update replaces the sections of --only in --json: give --only too"
    js.unlink()
    assert ev.main(args + ["--only", "upscaler_x2", "--update"]) == 2
    assert "no measurements in" in capsys.readouterr().err


def test_run_sections_returns_each_result_and_logs_its_time(capsys):
    from core.eval import run_sections

    assert run_sections([("first", lambda: 1), ("second", lambda: {"x": 2})], "eval") == {"first": 1,
                                                                                       "second": {"x": 2}}
    err = capsys.readouterr().err
    assert "eval first: 0 s" in err and "eval second: 0 s" in err


def test_realism_measures_each_release_and_the_floor_at_both_scales(gen, curated: Path):
    cfg = realism.C2stConfig(crop=32, crops=8, steps=5, batch=8, width=4)
    r = ev.two_sample_test({"a": gen, "b": gen}, curated, seeds=2, size=256, repeats=2, cfg=cfg)
    # structure: brick has no training split, so no floor for it; detail: only grass has real images
    assert set(r["structure"]["a"]) == {"brick", "grass", "mean"} and set(r["structure"]["floor"]) == {"grass", "mean"}
    assert set(r["detail"]["b"]) == {"grass", "mean"}
    assert all(len(rec["runs"]) == 2 and 0 <= rec["acc"] <= 1 for rec in r["structure"]["a"].values())

    lines = ev.realism_table(r)
    assert lines[2] == ("| style | structure: a | structure: b | structure: floor | detail: a | detail: b "
                        "| detail: floor |")
    brick = next(line for line in lines if line.startswith("| brick |"))
    assert brick.endswith("| — | — | — | — |")  # no floor at the GAN's scale, nothing at the detail scale
    assert lines[-2].startswith("| **mean over styles** | ")
    gap = r["structure"]["a"]["grass"]["acc"] - r["structure"]["floor"]["grass"]["acc"]  # grass: the only shared style
    assert lines[-1].startswith(f"| **above the floor, on the 1 styles every column has** | {gap:+.2f} | ")


def test_final_outputs_come_down_to_the_gans_scale():
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    (small,) = ev.to_gan_scale([img])
    assert small.shape == (64 // ev.GAN_SCALE, 64 // ev.GAN_SCALE, 3) and small.dtype == np.uint8


def test_upscalers_are_compared_on_the_same_gan_outputs(gen, curated: Path):
    cfg = realism.C2stConfig(crop=32, crops=8, steps=5, batch=8, width=4)
    model = gen.upscalers[4][0]
    with torch.no_grad():
        model.tail.weight.zero_()
        model.tail.bias.zero_()  # a silent residual: the model is its bicubic skip, so it must read as bicubic
    cands = ev.upscaler_candidates(gen, [])
    assert list(cands) == ["bicubic", gen.upscalers[4][2].stem]
    r = ev.detail_upscalers(gen, cands, curated, seeds=2, size=256, repeats=2, cfg=cfg)
    name = gen.upscalers[4][2].stem
    assert r["styles"] == ["grass"] and set(r["realism"]) == {"floor", "bicubic", name}
    assert r["lr_consistency_db"][name] == pytest.approx(r["lr_consistency_db"]["bicubic"], abs=0.05)
    assert r["seam_ratio"][name] == pytest.approx(r["seam_ratio"]["bicubic"], abs=1e-3)
    assert r["grid_pattern"][name] == pytest.approx(r["grid_pattern"]["bicubic"], abs=1e-3)
    assert set(r["grid_pattern"]) == {"floor", "bicubic", name}
    lines = ev.upscalers_table(r)
    assert lines[0] == "| upscaler | grass | mean | above the floor | LR consistency | seam ratio | grid pattern |"
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| bicubic", f"| {name}", "| floor"]


def test_an_upscaler_to_compare_must_be_a_x4_upscaler(gen, tiny_models: Path):
    x2 = next(p for p in tiny_models.glob("*.safetensors") if "x2" in p.name)
    with pytest.raises(ValueError, match="a ×4 upscaler is needed"):
        ev.upscaler_candidates(gen, [x2])
