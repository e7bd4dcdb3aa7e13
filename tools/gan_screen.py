"""Screen GAN checkpoints by the realism test at the structure scale, cheaply: which are worth a full eval.

    python tools/gan_screen.py OUT.json MODELS [MODELS …] [--seeds 16] [--repeats 3] [--shared STYLE,…]

Each MODELS is a models folder holding a generator file (e.g. what `python -m training export` writes for
a run's snapshot) or `shipped`. Every generator draws `--seeds` textures of 256² per style it has (the GAN's
own output, the scale `generate` draws a 1024² texture at, before the ×4 upscaler), and the classifier
two-sample test of core.realism scores them against the curated validation split at that scale, as
`python -m core.eval` does at its structure scale, with its floor (as many duplicate groups of training
textures as seeds, in the generated role) in the same run. Cheaper than the full test: no upscaling and
no detail scale, so a run with a dozen checkpoints takes minutes. The full test (`python -m core.eval --only
realism --models DIR --against shipped`) measures the one chosen.

Prints per column the mean over the `--shared` styles (default: the 10 styles of the shipped release) and
over all styles, each above the floor; OUT.json holds every figure (core.realism's record per style).
Classifiers are seeded by the column's name, so a column reads the same whichever others run beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import realism  # noqa: E402
from core.api import load_generator  # noqa: E402
from core.eval import classifier_tests, default_data, duplicate_groups, release_name, style_folders  # noqa: E402
from core.imageio import to_uint8  # noqa: E402

SHIPPED_STYLES = "brick,concrete,dirt,grass,metal,paving,rock,sand,snow,wood"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="where the JSON record goes")
    p.add_argument("models", nargs="+", help="models folders, or `shipped`")
    p.add_argument("--seeds", type=int, default=16, help="textures per style and generator (default 16)")
    p.add_argument("--repeats", type=int, default=3, help="repeats of the test (default 3)")
    p.add_argument("--shared", default=SHIPPED_STYLES, help="styles whose mean is printed first")
    p.add_argument("--data", type=Path, default=None, help="the curated set (default: the cache's)")
    args = p.parse_args(argv)
    data = args.data or default_data()
    groups = duplicate_groups(data)
    rng = np.random.default_rng(0)
    floor = {s: [g[i] for i in sorted(rng.permutation(len(g))[:args.seeds])]
             for s, g in style_folders(data / "gan" / "train", groups).items()}
    real = style_folders(data / "gan" / "val", groups)
    others: dict = {"floor": floor}
    for m in args.models:
        gen = load_generator("cpu", None if m == "shipped" else m)
        name = release_name(m, taken=others)
        with torch.inference_mode():
            others[name] = {s: [[to_uint8(gen.generate_gan(s, seed=10_000 + k, size=256).clamp(0, 1))]
                                for k in range(args.seeds)] for s in real if s in gen.styles}
        print(f"{name}: generated", file=sys.stderr)
    out = classifier_tests(real, others, args.repeats, realism.C2stConfig(), desc="structure")
    args.out.write_text(json.dumps(out, indent=1))
    shared = [s for s in args.shared.split(",") if s]
    accs = {n: {s: v["acc"] for s, v in r.items() if isinstance(v, dict) and "acc" in v}
            for n, r in out.items() if isinstance(r, dict)}
    base = accs["floor"]
    for name, a in accs.items():
        line = f"{name:24s}"
        for label, styles in (("shared", shared), ("all", sorted(base))):
            if styles and all(s in a for s in styles):
                m, f = np.mean([a[s] for s in styles]), np.mean([base[s] for s in styles])
                line += f"  {label} {m:.3f} ({m - f:+.3f})"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
