"""`python -m core.bench --quick`: the benchmark runs end to end and writes its report (no timing checks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import cli_env

ROOT = Path(__file__).resolve().parent.parent


def test_quick_bench_writes_report_plots_and_json(tiny_models, tmp_path):
    from core.export_onnx import export_folder

    export_folder(tiny_models)  # the graphs the bundled path (onnx section) runs
    out = tmp_path / "B.md"
    res = subprocess.run([sys.executable, "-m", "core.bench", "--quick", "--models", str(tiny_models),
                          "--out", str(out), "--compile"],
                         capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=300)
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    for section in ("## Targets", "## Pipeline", "## Fresh processes", "## Throughput and batching", "## torch.compile",
                    "## Where the time goes", "## Upscalers", "## Bundled path: ONNX Runtime vs PyTorch",
                    "| bundled path (ONNX Runtime) ÷ PyTorch, 1024² warm (≤ 1.5) |"):
        assert section in text
    for png in ("B_time.png", "B_upscalers.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = json.loads((tmp_path / "B_latest.json").read_text())
    assert [p["size"] for p in r["pipeline"]] == [256, 512]
    assert all(p["total_s"] > 0 and p["gan_s"] > 0 and p["upscale_s"] > 0 for p in r["pipeline"])
    assert r["flops"]["gan_gflop"] > 0 and r["flops"]["upscale_gflop"] > 0 and r["flops"]["peak_gflops"] > 0
    assert [m["size"] for m in r["memory"]] == [256, 512] and all(m["peak_rss_mib"] > 50 for m in r["memory"])
    names = [u["name"] for u in r["upscalers"]]
    assert names == ["bicubic", "shipped (channels=8, blocks=1)", "full SRResNet (untrained)"]
    assert [t["batch"] for t in r["throughput"]] == [1, 2] and all(t["per_s"] > 0 for t in r["throughput"])
    [c] = r["compile"]
    assert c["mode"] == "default" and "error" not in c, c
    assert c["max_diff_8bit"] <= 1  # the compiled models draw the same texture
    check_onnx_section(r["onnx"])

    # --only: just that section again, merged into the saved run; the rest of the report is kept as measured
    del r["onnx"]
    (tmp_path / "B_latest.json").write_text(json.dumps(r))
    out.write_text("")
    res = subprocess.run([sys.executable, "-m", "core.bench", "--quick", "--models", str(tiny_models),
                          "--out", str(out), "--only", "onnx"],
                         capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=300)
    assert res.returncode == 0, res.stderr
    merged = json.loads((tmp_path / "B_latest.json").read_text())
    assert {k: v for k, v in merged.items() if k not in ("onnx", "remeasured")} == r
    check_onnx_section(merged["onnx"])
    assert list(merged["remeasured"]) == ["onnx"]
    text = out.read_text()
    assert f"sections measured again since with `--only`: onnx {merged['remeasured']['onnx']}." in text.splitlines()[2]
    assert "## Pipeline" in text and "## Bundled path: ONNX Runtime vs PyTorch" in text


def check_onnx_section(o: dict) -> None:
    """The quick onnx section's JSON is well formed: one 256² row of the same texture both ways, a cold worker
    on each runtime."""
    assert "error" not in o and "cold_error" not in o, o
    assert o["threads"] >= 1 and o["target_ratio"] == 1.5 and o["quick"] is True and o["onnxruntime"]
    [row] = o["rows"]
    assert row["size"] == 256 and row["runs"] == 2 and row["torch_s"] > 0 and row["onnx_s"] > 0
    assert abs(row["ratio"] - row["onnx_s"] / row["torch_s"]) < 1e-9
    assert row["max_diff_8bit"] <= 1  # one seed, one texture on either path
    assert [c["runtime"] for c in o["cold"]] == ["onnx", "torch"]
    assert all(c["size"] == 256 and 0 < c["ready_s"] <= c["result_s"] for c in o["cold"])


def test_onnx_section_reports_a_model_the_bundled_path_cannot_run(tiny_models):
    """Weights without ONNX graphs: the section says why instead of crashing the whole bench."""
    from core.api import load_generator
    from core.bench import onnx_lines, onnx_vs_torch

    o = onnx_vs_torch(load_generator(device="cpu", models_dir=tiny_models), str(tiny_models), (256,), {256: 1})
    assert "no ONNX graph" in o["error"] and "rows" not in o
    assert onnx_lines(o)[-1].startswith("Not measured: ")


def test_onnx_table_marks_the_target_at_1024():
    from core.bench import onnx_lines

    rows = [{"size": s, "runs": 3, "torch_s": 1.0, "onnx_s": ratio, "ratio": ratio, "max_diff_8bit": 1}
            for s, ratio in ((256, 2.0), (1024, 1.4), (2048, 1.6))]
    o = {"threads": 2, "target_ratio": 1.5, "date": "2026-01-01 00:00", "onnxruntime": "1.23.2", "rows": rows,
         "quick": False, "cold": [{"runtime": "onnx", "size": 1024, "runs": 3, "ready_s": 0.5, "result_s": 1.25}]}
    lines = onnx_lines(o)
    assert "| 1024² | 1.000 | 1.400 | ×1.40 | ≤ ×1.5 | yes | 3 | 1 |" in lines
    assert "| 256² | 1.000 | 2.000 | ×2.00 |  |  | 3 | 1 |" in lines  # the target is for 1024² only
    assert any("--runtime onnx`, one generate request of 1024²" in ln and "after 1.25 s" in ln for ln in lines)
    o["rows"][1] |= {"onnx_s": 1.6, "ratio": 1.6}
    assert "| 1024² | 1.000 | 1.600 | ×1.60 | ≤ ×1.5 | no | 3 | 1 |" in onnx_lines(o)


def test_only_refuses_unknown_sections():
    from core.bench import main

    assert main(["--only", "pipeline,speed"]) == 2
    assert main(["--only", "onnx", "--device", "cuda"]) == 2  # the bundled path is compared on a CPU
