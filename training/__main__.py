"""`python -m training <command>`: data, gan, sr, export. Each command's --help says more."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from .cli import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
