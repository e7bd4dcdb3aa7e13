"""`python -m core.bench --quick`: the benchmark runs end to end and writes its report (no timing checks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import cli_env

ROOT = Path(__file__).resolve().parent.parent


def test_quick_bench_writes_report_plots_and_json(tiny_models, tmp_path):
    out = tmp_path / "B.md"
    res = subprocess.run([sys.executable, "-m", "core.bench", "--quick", "--models", str(tiny_models),
                          "--out", str(out), "--compile"],
                         capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=300)
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    for section in ("## Targets", "## Pipeline", "## Fresh processes", "## Throughput and batching", "## torch.compile",
                    "## Where the time goes", "## Upscalers"):
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
