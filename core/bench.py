"""`python -m core.bench` (`make bench`): how fast Tessera is on this machine, and why.

Measures (as the team's shared METRICS.md asks of speed: medians of warm runs, ratios measured in the run):
  pipeline   warm median time of a whole texture at 256…4096², with the GAN's and the upscaler's shares;
  cold       wall time of a fresh `tessera generate --size 1024` process (imports, loading, writing);
  memory     peak resident memory of a fresh process generating one texture, per size;
  throughput textures per second at 1024² through `generate_many`, per batch size (seeds per pass);
  compile    with --compile: torch.compile modes against eager (compile time, warm time, any difference);
  FLOPs      model FLOPs per 1024² texture (torch.utils.flop_counter) and the achieved FLOP/s as a
             fraction of this machine's measured peak for the same kind of work: a large 3×3
             convolution timed in the same run;
  upscalers  the shipped and the full SRResNet configurations vs bicubic: time and quality;
  onnx       the bundled path (core.runtime on ONNX Runtime's CPU provider, as in the Blender extension)
             against PyTorch: warm medians of the same whole texture at 256², 1024², 2048² on the same
             thread count, calls alternating, their ratio against a 1.5× target at 1024², and a fresh
             worker process on each path answering one generate request (CPU runs only).
Writes docs/BENCHMARKS.md with tables and PNG plots, and the raw numbers as JSON beside it. A run saved
with `--label baseline` is kept and shown next to later runs (before / after). `--only SECTIONS` runs just
those sections, merges them into the saved run (docs/BENCHMARKS_latest.json) and rewrites the report from it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .api import GAN_SCALE, Tessera, load_generator
from .eval import run_sections
from .files import write_text

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SIZES = (256, 512, 1024, 2048, 4096)
TARGETS_CPU = {"warm_1024_s": 1.0, "cold_1024_s": 4.0, "peak_4096_mib": 2048, "peak_fraction": 0.5,
               "onnx_over_torch_1024": 1.5}
SECTIONS = ("pipeline", "cold", "memory", "throughput", "upscalers", "compile", "onnx")  # --only
ONNX_SIZES = (256, 1024, 2048)
# `python -m core worker` in an interpreter where `import torch` fails, as in Blender's own Python
WITHOUT_TORCH = "import sys; sys.modules['torch'] = None; from core.cli import main; sys.exit(main())"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_time(fn, runs: int, device: torch.device) -> float:
    times = []
    for _ in range(runs):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# the measurements

def pipeline(gen: Tessera, size: int, runs: int) -> dict:
    """Warm times: the whole texture, then its GAN and upscaler parts separately."""
    style = list(gen.generators)[0]
    gen.generate(style, seed=0, size=size)  # warm-up
    total = _median_time(lambda: gen.generate(style, seed=1, size=size), runs, gen.device)
    gan = _median_time(lambda: gen.generate_gan(style, seed=1, size=size // GAN_SCALE), runs, gen.device)
    x = gen.generate_gan(style, seed=1, size=size // GAN_SCALE)
    with torch.inference_mode():
        up = _median_time(lambda: gen._upscale(x, GAN_SCALE, tileable=True), runs, gen.device)
    return {"size": size, "runs": runs, "total_s": total, "gan_s": gan, "upscale_s": up}


def peak_rss_mib() -> float:
    """This process's peak resident memory. On Linux VmHWM, which starts afresh at exec; ru_maxrss
    would also count the parent's memory at fork time (it survives exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource  # Unix only

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 2**20)


def child_generate(size: int, models: str | None, device: str) -> dict:
    """In a fresh process: generate one texture → its time and this process's peak memory."""
    t0 = time.perf_counter()
    gen = load_generator(device=device, models_dir=models)
    loaded = time.perf_counter() - t0
    t1 = time.perf_counter()
    gen.generate(list(gen.generators)[0], seed=0, size=size)
    _sync(gen.device)
    r = {"size": size, "load_s": loaded, "generate_s": time.perf_counter() - t1, "peak_rss_mib": peak_rss_mib()}
    if gen.device.type == "cuda":  # the host's memory says little there: the GPU's own peak too
        r["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return r


def fresh_process(args: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, res.stdout


def memory(size: int, models: str | None, device: str) -> dict:
    cmd = ["-m", "core.bench", "--child", str(size), "--device", device] + (["--models", models] if models else [])
    wall, out = fresh_process(cmd)
    return json.loads(out) | {"process_s": wall}


def cold(size: int, models: str | None, device: str, runs: int) -> dict:
    """A user's `tessera generate`: Python start, imports, loading weights, generating, writing the PNG."""
    from .catalog import list_styles

    style = list_styles(models)[0][0]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["-m", "core", "generate", "--style", style, "--size", str(size), "--device", device,
               "--out", str(Path(tmp) / "t.png")] + (["--models", models] if models else [])
        times = [fresh_process(cmd)[0] for _ in range(runs)]
    return {"size": size, "runs": runs, "median_s": statistics.median(times)}


def throughput(gen: Tessera, size: int, count: int, batch: int) -> dict:
    """Textures per second through `generate_many`, `batch` seeds at a time, styles taking turns."""
    def run() -> None:
        for i in range(0, count, batch):
            for _ in gen.generate_many(list(gen.generators)[i // batch % len(gen.generators)], range(i, i + batch), size, batch):
                pass

    run()  # warm-up: every shape once
    seconds = _median_time(run, 3, gen.device)
    return {"size": size, "count": count, "batch": batch, "per_s": count / seconds,
            "ms_per_texture": 1000 * seconds / count}


def compiled(device: str, models: str | None, size: int, runs: int, modes: tuple[str, ...]) -> list[dict]:
    """torch.compile against eager on fresh models: compile time (the first call) and warm time."""
    rows = []
    for mode in modes:
        gen = load_generator(device=device, models_dir=models)
        style = list(gen.generators)[0]
        eager = gen.generate(style, seed=0, size=size)
        eager_s = _median_time(lambda: gen.generate(style, seed=1, size=size), runs, gen.device)
        row: dict = {"mode": mode, "size": size, "eager_s": eager_s}
        try:
            gen.compile(mode)
            t0 = time.perf_counter()
            out = gen.generate(style, seed=0, size=size)
            row["first_call_s"] = time.perf_counter() - t0
            row["warm_s"] = _median_time(lambda: gen.generate(style, seed=1, size=size), runs, gen.device)
            row["max_diff_8bit"] = int(np.abs(out.astype(int) - eager.astype(int)).max())
        except Exception as e:  # a backend that cannot compile here is a result to report, not a crash
            row["error"] = f"{e.__class__.__name__}: {str(e).splitlines()[0][:160]}"
        rows.append(row)
        print(f"bench compile {mode}: {row}", file=sys.stderr)
    return rows


def flops(gen: Tessera, size: int, warm_total_s: float) -> dict:
    """Model FLOPs of one texture, and the machine's peak on a large 3×3 convolution (same dtype/device)."""
    from torch.utils.flop_counter import FlopCounterMode

    style = list(gen.generators)[0]
    with FlopCounterMode(display=False) as counter_gan:
        x = gen.generate_gan(style, seed=0, size=size // GAN_SCALE)
    with FlopCounterMode(display=False) as counter_up, torch.inference_mode():
        gen._upscale(x, GAN_SCALE, tileable=True)
    total = counter_gan.get_total_flops() + counter_up.get_total_flops()
    c, side = 64, 256 if gen.device.type == "cpu" else 1024
    a = torch.randn(1, c, side, side, device=gen.device)
    w = torch.randn(c, c, 3, 3, device=gen.device)
    with torch.inference_mode():
        F.conv2d(a, w, padding=1)
        t = _median_time(lambda: F.conv2d(a, w, padding=1), 5, gen.device)
    peak = 2 * c * c * 9 * side * side / t
    achieved = total / warm_total_s
    return {"size": size, "gan_gflop": counter_gan.get_total_flops() / 1e9,
            "upscale_gflop": counter_up.get_total_flops() / 1e9,
            "achieved_gflops": achieved / 1e9, "peak_gflops": peak / 1e9, "fraction_of_peak": achieved / peak,
            "peak_probe": f"conv2d 3×3, {c}→{c} channels, {side}²"}


def upscalers(gen: Tessera, size: int, runs: int) -> list[dict]:
    """Shipped (trained) vs full SRResNet config (untrained: time only) vs bicubic, ×4 to `size`."""
    from .upscaler import FULL, Upscaler, upscale_tiled, wrap_upsample

    x = torch.rand(1, 3, size // 4, size // 4, device=gen.device)
    rows = []
    with torch.inference_mode():
        rows.append({"name": "bicubic", "size": size, "params_m": 0.0, "gain_db": 0.0,
                     "s": _median_time(lambda: wrap_upsample(x, 4), runs, gen.device)})
        shipped, meta, _ = gen.upscalers[4]
        full = Upscaler(FULL).to(gen.device).eval()
        shipped_gain = meta.get("metrics", {}).get("upscaler_x4", {}).get("psnr_gain_db")
        label = f"shipped (channels={shipped.cfg.channels}, blocks={shipped.cfg.blocks})"
        for name, model, gain in ((label, shipped, shipped_gain),
                                  ("full SRResNet (untrained)", full, None)):
            upscale_tiled(model, x)
            rows.append({"name": name, "size": size, "config": model.cfg.to_dict(),
                         "s": _median_time(lambda m=model: upscale_tiled(m, x), runs, gen.device),
                         "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "gain_db": gain})
    return rows


def onnx_vs_torch(gen: Tessera, models: str | None, sizes: tuple[int, ...], runs: dict[int, int]) -> dict:
    """The bundled path against the PyTorch one, in this process: core.runtime on ONNX Runtime's CPU
    provider with `torch.get_num_threads()` intra-op threads, and `gen` (a CPU Tessera), both making the
    same default texture (`generate`: GAN at size/4, ×4 upscaler in 256-pixel tiles, wrap-around) of each
    side in `sizes` (pixels, multiples of 64 from 256), `runs[size]` timed calls each after one warm-up.
    Calls alternate PyTorch, ONNX Runtime, … so a load that drifts during the run weighs on both alike.
    → {"threads", "onnxruntime" (version), "target_ratio", "date", "rows": [{"size", "runs", "torch_s",
    "onnx_s" (warm medians, seconds), "ratio" (onnx_s / torch_s), "max_diff_8bit" (between the two
    textures of one seed)}]}, or {"error": one line} when the bundled path cannot run these models here
    (no onnxruntime, no graph for a file, a file that loads on one path only): a result, not a crash."""
    from . import runtime

    threads = torch.get_num_threads()
    r: dict = {"threads": threads, "target_ratio": TARGETS_CPU["onnx_over_torch_1024"],
               "date": time.strftime("%Y-%m-%d %H:%M")}
    try:
        import onnxruntime

        r["onnxruntime"] = onnxruntime.__version__
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bad files are in rt.errors, checked below
            rt = runtime.load(models, providers=["CPUExecutionProvider"], threads=threads)
    except (ImportError, FileNotFoundError, ValueError) as e:
        return r | {"error": f"{e.__class__.__name__}: {str(e).splitlines()[0][:200]}"}
    style = list(gen.generators)[0]
    if rt.errors or style not in rt.generators or rt.upscalers.keys() != gen.upscalers.keys():
        why = "; ".join(rt.errors) or f"it loads styles {rt.styles} and ×{sorted(rt.upscalers)}"
        return r | {"error": f"the bundled path does not load the same models: {why[:200]}"}
    rows = []
    for size in sizes:
        a, b = gen.generate(style, seed=0, size=size), rt.generate(style, seed=0, size=size)  # warm-up
        diff = int(np.abs(a.astype(int) - b.astype(int)).max())
        t_torch, t_onnx = [], []
        for _ in range(runs[size]):
            t0 = time.perf_counter()
            gen.generate(style, seed=1, size=size)
            t1 = time.perf_counter()
            rt.generate(style, seed=1, size=size)
            t_torch.append(t1 - t0)
            t_onnx.append(time.perf_counter() - t1)
        torch_s, onnx_s = statistics.median(t_torch), statistics.median(t_onnx)
        rows.append({"size": size, "runs": runs[size], "torch_s": torch_s, "onnx_s": onnx_s,
                     "ratio": onnx_s / torch_s, "max_diff_8bit": diff})
        print(f"bench onnx {size}²: {rows[-1]}", file=sys.stderr)
    return r | {"rows": rows}


def worker_cold(models: str | None, runtime: str, size: int, runs: int) -> dict:
    """A fresh `python -m core worker --runtime RUNTIME --device cpu` answering one generate request of
    `size`² (albedo PNG into a temporary folder), as the Blender add-on starts it; on "onnx" in an
    interpreter where `import torch` fails, as Blender's own Python. Wall seconds from starting the process
    to its ready line and to its result line, medians of `runs` → {"runtime", "size", "runs", "ready_s",
    "result_s"}. Raises RuntimeError with the worker's last words when it sends no result."""
    from .catalog import list_styles

    style = list_styles(models)[0][0]
    start = ["-m", "core"] if runtime == "torch" else ["-c", WITHOUT_TORCH]
    extra = ["--models", str(Path(models).resolve())] if models else []
    ready, result = [], []
    with tempfile.TemporaryDirectory() as tmp:
        request = {"id": 1, "cmd": "generate", "style": style, "seed": 0, "size": size, "out": f"{tmp}/t.png"}
        for _ in range(runs):
            with tempfile.TemporaryFile("w+") as err:  # a file, not a pipe: nothing blocks on its stderr
                t0 = time.perf_counter()
                proc = subprocess.Popen([sys.executable, *start, "worker", "--runtime", runtime, "--device", "cpu",
                                         *extra], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=err, text=True)
                assert proc.stdin and proc.stdout
                proc.stdin.write(json.dumps(request) + "\n" + json.dumps({"cmd": "quit"}) + "\n")
                proc.stdin.close()
                times: dict[str, float] = {}
                for line in proc.stdout:
                    event = json.loads(line).get("event")
                    if event in ("ready", "result") and event not in times:
                        times[event] = time.perf_counter() - t0
                proc.stdout.close()
                proc.wait()
                if "result" not in times:
                    err.seek(0)
                    raise RuntimeError(f"worker --runtime {runtime} sent no result: {err.read().strip()[-300:]}")
            ready.append(times["ready"])
            result.append(times["result"])
    return {"runtime": runtime, "size": size, "runs": runs, "ready_s": statistics.median(ready),
            "result_s": statistics.median(result)}


def bundled(gen: Tessera, models: str | None, quick: bool, runs: dict[int, int]) -> dict:
    """The `onnx` section: `onnx_vs_torch` at ONNX_SIZES (256² only when `quick`, 2 runs), then a cold
    worker on each runtime (`worker_cold`, 1024² or 256² when quick; skipped when the warm part failed)."""
    sizes = ONNX_SIZES[:1] if quick else ONNX_SIZES
    r = onnx_vs_torch(gen, models, sizes, {s: 2 if quick else runs[s] for s in sizes})
    r["quick"] = quick
    if "error" not in r:
        size, n = (256, 1) if quick else (1024, 3)
        try:
            r["cold"] = [worker_cold(models, rt, size, n) for rt in ("onnx", "torch")]
        except RuntimeError as e:  # the warm numbers stand; say why the cold ones are missing
            r["cold_error"] = str(e).splitlines()[0][:300]
    return r


def machine(device: torch.device) -> str:
    from .eval import machine as cpu_name

    if device.type == "cuda":
        return f"{torch.cuda.get_device_name()} ({cpu_name()})"
    return f"{cpu_name()}, {torch.get_num_threads()} threads"


def run(device: str = "cpu", models: str | None = None, quick: bool = False,
        compile_modes: tuple[str, ...] = (), only: tuple[str, ...] | None = None) -> dict:
    """Every section (or those named in `only`, of SECTIONS; onnx on a CPU only) → the raw results, as
    written to the JSON. Raises ValueError for a section name this device does not run."""
    gen = load_generator(device=device, models_dir=models)
    sizes = SIZES[:2] if quick else SIZES
    runs = {256: 20, 512: 15, 1024: 11, 2048: 4, 4096: 2}  # this VM's timings vary by ±10 %: medians of many
    # Batches: measured slower per texture on a CPU (cache-bound), the way to keep a GPU busy.
    batches = (1, 2) if quick else (1, 4) if gen.device.type == "cpu" else (1, 8, 32, 64)
    r: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(gen.device), "device": str(gen.device),
               "torch": torch.__version__, "quick": quick}
    size_1024 = sizes[-1] if quick else 1024
    steps = [
        ("pipeline", lambda: [pipeline(gen, s, 2 if quick else runs[s]) for s in sizes]),
        ("cold", lambda: cold(size_1024, models, device, 1 if quick else 3)),
        ("memory", lambda: [memory(s, models, device) for s in (sizes if quick else (1024, 4096))]),
        ("throughput", lambda: [throughput(gen, size_1024, 2 if quick else max(8, 2 * b), b) for b in batches]),
        ("upscalers", lambda: upscalers(gen, 256 if quick else 1024, 2 if quick else 3)),
        ("compile", lambda: compiled(device, models, size_1024, 2 if quick else 5, compile_modes)),
    ]
    if gen.device.type == "cpu":  # the bundled path against PyTorch on the same CPU
        steps.append(("onnx", lambda: bundled(gen, models, quick, runs)))
    if only is not None:
        unknown = sorted(set(only) - {name for name, _ in steps})
        if unknown:  # before any section runs
            raise ValueError(f"--only {','.join(unknown)}: sections on {gen.device.type} are "
                             f"{', '.join(name for name, _ in steps)}")
        steps = [st for st in steps if st[0] in only]
    r.update(run_sections(steps, "bench"))
    if "pipeline" in r:
        ref = next(p for p in r["pipeline"] if p["size"] == size_1024)
        r["flops"] = flops(gen, ref["size"], ref["total_s"])
    return r


# the report

def plot_time(r: dict, base: dict | None, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for data, label, style in ((base, "baseline", "o--"), (r, "now", "o-")):
        if data:
            px = [p["size"] ** 2 for p in data["pipeline"]]
            ax.plot(px, [p["total_s"] for p in data["pipeline"]], style, label=f"total ({label})")
            ax.plot(px, [p["upscale_s"] for p in data["pipeline"]], style, alpha=0.5, label=f"upscaler ({label})")
    p = r["pipeline"]
    if len(p) > 1:  # the linear reference through the 1024² point (or the largest measured)
        ref = next((q for q in p if q["size"] == 1024), p[-1])
        xs = np.array([q["size"] ** 2 for q in p], dtype=float)
        ax.plot(xs, ref["total_s"] * xs / ref["size"] ** 2, ":", color="grey", label="linear in pixels")
    ax.set(xscale="log", yscale="log", xlabel="output pixels", ylabel="seconds (warm median)",
           title=f"Tessera pipeline on {r['device']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_upscalers(r: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for u in r["upscalers"]:
        gain = u["gain_db"]
        y = gain if gain is not None else 0.0
        ax.plot(u["s"], y, "o" if gain is not None else "x", markersize=9)
        ax.annotate(u["name"] + ("" if gain is not None else ": quality not measured"),
                    (u["s"], y), textcoords="offset points", xytext=(6, 6), fontsize=7)
    ax.set(xscale="log", xlabel=f"seconds to upscale ×4 to {r['upscalers'][0]['size']}² (warm)",
           ylabel="PSNR-Y gain over bicubic (dB)",
           title="Upscaler quality vs speed")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _pipeline_at(data: dict | None, size: int) -> dict | None:
    return next((p for p in data["pipeline"] if p["size"] == size), None) if data else None


def _onnx_ratio(data: dict | None, size: int) -> float | None:
    rows = (data or {}).get("onnx", {}).get("rows", [])
    return next((row["ratio"] for row in rows if row["size"] == size), None)


def onnx_lines(o: dict | None) -> list[str]:
    """The report's section for the `onnx` results (`bundled`): markdown lines, none without them."""
    if not o:
        return []
    lines = ["", "## Bundled path: ONNX Runtime vs PyTorch", ""]
    if "error" in o:
        return lines + [f"Not measured: {o['error']}"]
    goal = o["target_ratio"]
    lines += [f"Measured {o['date']}{' — quick mode, not for reading' if o.get('quick') else ''}. The same default "
              f"texture (GAN at size/4, ×4 upscaler in 256-pixel tiles, wrap-around) made by core.runtime on ONNX "
              f"Runtime {o['onnxruntime']} (CPU provider, as the Blender extension bundles it) and by core.api on "
              f"PyTorch, both on {o['threads']} threads, calls alternating; warm medians. Target: the bundled path "
              f"within {goal}× of PyTorch at 1024².", "",
              "| size | PyTorch s | ONNX Runtime s | ONNX ÷ PyTorch | target | met | runs | max difference "
              "(8-bit levels) |", "|---|---|---|---|---|---|---|---|"]
    for row in o["rows"]:
        at_goal = row["size"] == 1024  # the target is for 1024²; the other sizes show the trend
        goal_cell, met = (f"≤ ×{goal}", "yes" if row["ratio"] <= goal else "no") if at_goal else ("", "")
        lines.append(f"| {row['size']}² | {row['torch_s']:.3f} | {row['onnx_s']:.3f} | ×{row['ratio']:.2f} | "
                     f"{goal_cell} | {met} | {row['runs']} | {row['max_diff_8bit']} |")
    names = {"onnx": "ONNX Runtime (torch unimportable, as in Blender's Python)", "torch": "PyTorch"}
    lines += [""] if o.get("cold") or "cold_error" in o else []
    for c in o.get("cold", []):
        lines += [f"- fresh `python -m core worker --runtime {c['runtime']}`, one generate request of {c['size']}²: "
                  f"{names.get(c['runtime'], c['runtime'])} answered after {c['result_s']:.2f} s, ready after "
                  f"{c['ready_s']:.2f} s (median of {c['runs']}: Python start, imports, loading the models, "
                  f"generating, writing the PNG)"]
    if "cold_error" in o:
        lines += [f"- fresh workers not measured: {o['cold_error']}"]
    return lines


def report(r: dict, base: dict | None, out: Path) -> str:
    stem = out.with_suffix("")
    plot_time(r, base, stem.parent / f"{stem.name}_time.png")
    plot_upscalers(r, stem.parent / f"{stem.name}_upscalers.png")
    fl = r["flops"]
    since = "; ".join(f"{name} {date}" for name, date in r.get("remeasured", {}).items())
    lines = ["# Benchmarks", "", f"Measured {r['date']} by `python -m core.bench` on **{r['machine']}** "
             f"(device {r['device']}){' — quick mode, not for reading' if r['quick'] else ''}"
             f"{f'; sections measured again since with `--only`: {since}' if since else ''}.",
             "", "## Targets", "", "Baseline: the run saved with `--label baseline`"
             f"{' (' + base['date'] + ')' if base else ' (none saved)'}. Timings here vary by about ±10 % from run to "
             "run; medians of many runs are shown, and smaller differences are noise.", "",
             "| target | baseline | now | met |", "|---|---|---|---|"]

    def target(name: str, key, goal: float, fmt: str, lower: bool = True) -> None:
        now, before = key(r), key(base) if base else None
        ok = None if now is None else (now <= goal if lower else now >= goal)
        met = "—" if ok is None else ("yes" if ok else "no")
        lines.append(f"| {name} | {'—' if before is None else format(before, fmt)} | "
                     f"{'—' if now is None else format(now, fmt)} | {met} |")

    def mem(d: dict | None, size: int) -> float | None:
        return next((m["peak_rss_mib"] for m in d["memory"] if m["size"] == size), None) if d else None

    if r["device"] == "cpu":
        target("1024² warm, s (≤ 1.0)", lambda d: (_pipeline_at(d, 1024) or {}).get("total_s"), 1.0, ".3f")
        target("cold `tessera generate --size 1024`, s (≤ 4)",
               lambda d: d["cold"]["median_s"] if d["cold"]["size"] == 1024 else None, 4.0, ".2f")
        target("4096² peak memory, MiB (≤ 2048)", lambda d: mem(d, 4096), 2048, ".0f")
        target("pipeline FLOP/s as a fraction of the conv peak (≥ 0.5)", lambda d: d["flops"]["fraction_of_peak"],
               0.5, ".2f", lower=False)
        target(f"bundled path (ONNX Runtime) ÷ PyTorch, 1024² warm (≤ {TARGETS_CPU['onnx_over_torch_1024']})",
               lambda d: _onnx_ratio(d, 1024), TARGETS_CPU["onnx_over_torch_1024"], ".2f")
        p = {q["size"]: q["total_s"] for q in r["pipeline"] if q["size"] >= 512}
        if 512 in p and 4096 in p:  # and the exponent of a least-squares fit time ∝ pixels^e over 512²…4096²
            e = np.polyfit(np.log([s * s for s in p]), np.log(list(p.values())), 1)[0]
            growth = p[4096] / p[512]
            lines.append(f"| time linear in pixels, 512² → 4096² (×64 pixels; met: ≤ ×80) | | ×{growth:.1f} "
                         f"time (fit: time ∝ pixels^{e:.2f}) | {'yes' if growth <= 64 * 1.25 else 'no'} |")
    else:
        best = min(r["throughput"], key=lambda t: t["ms_per_texture"])
        target(f"1024² per texture in batches of {best['batch']}, ms (≤ 10)",
               lambda d: min((t["ms_per_texture"] for t in d["throughput"] if "ms_per_texture" in t), default=None),
               10, ".1f")
        target("textures per second at 1024² (≥ 100)",
               lambda d: max((t["per_s"] for t in d["throughput"] if "per_s" in t), default=None), 100, ".0f",
               lower=False)
    if r["device"] == "cpu":
        lines += ["", "GPU targets (one H100/H200: 1024² ≤ 10 ms per texture in batches, ≥ 100 textures/s) are "
                  "measured with `python -m core.bench --device cuda --out docs/BENCHMARKS_cuda.md` on a GPU "
                  "machine; this report is the CPU one."]
    lines += ["", "## Pipeline (warm medians)", "", "| size | total s | GAN s | upscaler s | runs |",
              "|---|---|---|---|---|"]
    lines += [f"| {p['size']}² | {p['total_s']:.3f} | {p['gan_s']:.3f} | {p['upscale_s']:.3f} | {p['runs']} |"
              for p in r["pipeline"]]
    lines += ["", f"![time vs pixels]({stem.name}_time.png)", "",
              "## Fresh processes", "", f"- cold `tessera generate --size {r['cold']['size']}`: "
              f"{r['cold']['median_s']:.2f} s (median of {r['cold']['runs']}: Python start, imports, loading and "
              f"verifying weights, generating, writing the PNG)"]
    lines += [f"- {m['size']}²: peak RSS {m['peak_rss_mib']:.0f} MiB"
              + (f" (GPU: {m['gpu_peak_mib']:.0f} MiB allocated at peak)" if "gpu_peak_mib" in m else "")
              + f", loading {m['load_s']:.2f} s, "
              f"generating {m['generate_s']:.2f} s (first, cold)" for m in r["memory"]]
    lines += ["", "## Throughput and batching", "", f"`generate_many` at {r['throughput'][0]['size']}², styles taking "
              "turns, median of 3 warm passes:", "", "| seeds per batch | textures/s | textures/min | ms per texture |",
              "|---|---|---|---|"]
    lines += [f"| {t['batch']} | {t['per_s']:.1f} | {60 * t['per_s']:.0f} | {t['ms_per_texture']:.1f} |"
              for t in r["throughput"]]
    if r.get("compile"):
        lines += ["", "## torch.compile", "", "Fresh models per mode; the first call includes compiling.", "",
                  "| mode | eager s | first call s | compiled s | max difference (8-bit levels) |",
                  "|---|---|---|---|---|"]
        lines += [f"| {c['mode']} | {c['eager_s']:.3f} | " + (f"failed: {c['error']} | | |" if "error" in c else
                  f"{c['first_call_s']:.1f} | {c['warm_s']:.3f} | {c['max_diff_8bit']} |") for c in r["compile"]]
    lines += onnx_lines(r.get("onnx"))
    lines += ["", "## Where the time goes", "",
              f"One {fl['size']}² texture is {fl['gan_gflop']:.2f} GFLOP of GAN and {fl['upscale_gflop']:.2f} GFLOP "
              f"of upscaler (torch.utils.flop_counter). Achieved: {fl['achieved_gflops']:.1f} GFLOP/s, "
              f"{100 * fl['fraction_of_peak']:.0f}% of the {fl['peak_gflops']:.1f} GFLOP/s this machine reached on "
              f"a {fl['peak_probe']} timed in the same run.", "",
              "## Upscalers: quality vs speed", "", "| upscaler | params (M) | s | PSNR-Y gain (dB) |",
              "|---|---|---|---|"]
    lines += [f"| {u['name']} | {u['params_m']:.2f} | {u['s']:.3f} | "
              f"{'not measured' if u['gain_db'] is None else format(u['gain_db'], '+.2f')} |"
              for u in r["upscalers"]]
    lines += ["", f"![upscaler quality vs speed]({stem.name}_upscalers.png)", "",
              "Quality is the ×4 PSNR-Y gain over bicubic on the held-out validation textures, from the model card "
              "(`python -m core.eval`); the full configuration has no trained weights yet, so only its speed is shown."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--models", default=None, help="models folder (default: shipped weights)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and few runs: checks the bench runs")
    p.add_argument("--out", type=Path, default=DOCS / "BENCHMARKS.md")
    p.add_argument("--label", default="latest", help="'baseline' keeps this run as the before of later ones")
    p.add_argument("--compile", nargs="*", metavar="MODE", default=None,
                   help="also time torch.compile (modes: default, reduce-overhead = CUDA graphs, max-autotune, …; "
                        "none named: default)")
    p.add_argument("--only", default=None, metavar="SECTIONS",
                   help=f"comma-separated sections to run ({', '.join(SECTIONS)}; onnx on a CPU only): merged into "
                        "the saved run of this --out and --label (its JSON), and the report rewritten from it; "
                        "printed only when there is no saved run of this device")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child_generate(args.child, args.models, args.device)))
        return 0
    modes = () if args.compile is None else tuple(args.compile) or ("default",)
    only = None if args.only is None else tuple(w.strip() for w in args.only.split(",") if w.strip())
    if only is not None and (not only or set(only) - set(SECTIONS) or ("onnx" in only and args.device != "cpu")):
        print(f"error: --only {args.only!r}: sections are {', '.join(SECTIONS)} (onnx with --device cpu only)",
              file=sys.stderr)
        return 2
    r = run(args.device, args.models, args.quick, modes, only)
    raw = args.out.with_suffix("")
    saved_path = raw.parent / f"{raw.name}_{args.label}.json"
    if only is not None:  # these sections replace theirs in the saved run; the rest of it stays as measured
        saved = json.loads(saved_path.read_text()) if saved_path.is_file() else None
        if saved is None or saved.get("device") != r["device"]:
            print(json.dumps(r, indent=1))
            print(f"no saved {r['device']} run in {saved_path}: printed only, wrote nothing", file=sys.stderr)
            return 0
        remeasured = saved.get("remeasured", {}) | {k: r["date"] for k in only}  # the header says which, when
        r = saved | {k: v for k, v in r.items() if k in only or k == "flops"} | {"remeasured": remeasured}
    write_text(saved_path, json.dumps(r, indent=1))
    base_path = raw.parent / f"{raw.name}_baseline.json"
    base = json.loads(base_path.read_text()) if base_path.is_file() and args.label != "baseline" else None
    if base is not None and base.get("device") != r["device"]:
        base = None
    write_text(args.out, report(r, base, args.out))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
