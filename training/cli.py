"""Command table for `python -m training`. Thin: parse, call, print."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from core.files import cache_dir


def cmd_data(args: argparse.Namespace) -> int:
    from .data import curate

    curate(args.cache / "data", args.out or args.cache / "curated", workers=args.workers)
    return 0


def _field_docs(cls: type) -> dict[str, str]:
    """Each config field's docstring (the string right after the field in the body of the class or of a
    base class), on one line."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for c in reversed(cls.__mro__[:-1]):  # bases first, so a subclass's docstring wins; not `object`
        node = ast.parse(textwrap.dedent(inspect.getsource(c))).body[0]
        assert isinstance(node, ast.ClassDef)
        body = node.body
        docs |= {field.target.id: " ".join(doc.value.value.split())
                 for field, doc in zip(body, body[1:])
                 if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name)
                 and isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)
                 and isinstance(doc.value.value, str)}
    return docs


def _config_args(p: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One --flag per config field, help from the field's docstring in the source. Flags not given stay out
    of the parsed namespace (_config fills them), so a resumed run can tell them from the defaults."""
    import dataclasses

    docs = _field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        doc = docs.get(f.name, "")
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        shown = (" (required)" if f.default is dataclasses.MISSING else
                 "" if default is None else f" (default {default})")
        if f.type in ("bool", bool):
            p.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=doc)
        elif "tuple" in str(f.type):
            p.add_argument(flag, type=lambda v: tuple(int(x) for x in v.split(",")), default=argparse.SUPPRESS,
                           help=f"{doc} (comma-separated, default {','.join(map(str, default or ()))})")
        else:
            kind = {"int": int, "float": float, "Path": Path, "str": str}
            base = str(f.type).split("|")[0].strip()
            p.add_argument(flag, type=kind.get(base, str), default=argparse.SUPPRESS,
                           help=doc + shown)


# What a resumed run takes from the command line only: where it is, that it resumes, the machine, and what
# only starts a run (its start and where the start's new styles begin).
_NOT_RECORDED = ("out", "resume", "device", "init", "style_init")


def _config(cls: type, args: argparse.Namespace):  # noqa: ANN202 (a GanConfig or SrConfig)
    """The run's config from the flags given. With --resume, every flag not given takes the value the run
    was started with (its checkpoint's record), so `--out DIR --resume` alone continues a run as it was;
    flags given override it (a longer --minutes, a larger --crop). Raises ValueError naming a missing flag,
    FileNotFoundError for --resume without a checkpoint."""
    import dataclasses

    from . import checkpoint

    given = {k: v for k, v in vars(args).items() if k not in ("command", "func")}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if given.get("resume") and "out" in given:
        recorded = checkpoint.read_meta(Path(given["out"]))[0].get("train", {})
        given = {k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()
                 if k in fields and k not in _NOT_RECORDED} | given
    missing = [name for name, f in fields.items() if f.default is dataclasses.MISSING and name not in given]
    if missing:
        raise ValueError(f"--{missing[0].replace('_', '-')} is required"
                         + (" (or --resume with the --out of a run, which records it)" if missing[0] == "data" else ""))
    return cls(**given)


def cmd_train(args: argparse.Namespace) -> int:
    """`gan` or `sr`: one training run."""
    import importlib

    module = importlib.import_module(f".{args.command}", __package__)
    config = module.GanConfig if args.command == "gan" else module.SrConfig
    print(f"checkpoint: {module.train(_config(config, args))}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export

    print(f"wrote {export(args.ckpt_dir, args.out, average=not args.no_average)}")
    return 0


def cmd_reference(args: argparse.Namespace) -> int:
    from .learn import add_reference

    print(f"{args.file}: descriptors of {add_reference(args.file, args.data)} training images stored")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("data", help="fetch and curate the real texture photographs")
    d.add_argument("--cache", type=Path, default=cache_dir(), help="download/unpack folder (outside git)")
    d.add_argument("--out", type=Path, default=None, help="curated set (default: CACHE/curated)")
    d.add_argument("--workers", type=int, default=2)
    d.set_defaults(func=cmd_data)

    from .gan import GanConfig

    g = sub.add_parser("gan", help="train the style-conditional texture generator")
    _config_args(g, GanConfig)
    g.set_defaults(func=cmd_train)

    from .sr import SrConfig

    s = sub.add_parser("sr", help="train the tileable upscaler")
    _config_args(s, SrConfig)
    s.set_defaults(func=cmd_train)

    e = sub.add_parser("export", help="write a weights file from a checkpoint folder")
    e.add_argument("ckpt_dir", type=Path)
    e.add_argument("--out", type=Path, required=True, help="FILE.safetensors")
    e.add_argument("--no-average", action="store_true",
                   help="an sr run's last weights instead of their moving average (for an adversarial upscaler, "
                        "whose detail the average blurs)")
    e.set_defaults(func=cmd_export)

    r = sub.add_parser("reference", help="store the descriptors of a generator's real training images in its file, "
                                         "for learn's choice of a start (training.learn.add_reference)")
    r.add_argument("file", type=Path, help="a generator .safetensors")
    r.add_argument("--data", type=Path, required=True, help="its training images, DIR/<style>/*.png (e.g. the "
                                                            "curated gan/train)")
    r.set_defaults(func=cmd_reference)
    return p


def one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ARG001
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # One line per warning, as in core.cli. Through formatwarning rather than showwarning, so that
    # pytest.warns and warnings.catch_warnings(record=True) still catch them in-process.
    before, warnings.formatwarning = warnings.formatwarning, one_line_warning
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:  # a missing data folder or checkpoint is the user's to fix
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a path under a file, a read-only file system, no permission: the path and why
        print(f"error: {e.filename}: {e.strerror}" if e.filename and e.strerror else f"error: {e}", file=sys.stderr)
        return 1  # as in core.cli: 2 is for a mistake in the command line, 1 for the machine saying no
    finally:
        warnings.formatwarning = before
