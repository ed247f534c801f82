"""argparse value types and error reporting shared by `vsa`, `vsend` and `vrecv`."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

EXIT_BAD_INPUT = 2


class UserError(Exception):
    """An error to report in one line, exit status 2."""


def require_extra(modules: tuple[str, ...], extra: str, what: str) -> None:
    """Raise UserError in one line, naming the extra to install, if a module an optional feature needs is absent.

    Checked before the work starts, so a user learns it in a second rather than from a traceback later.
    """
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"{what} needs {' and '.join(missing)}: pip install 'vsa[{extra}]'")


def report_errors(prog: str, errors: tuple[type[BaseException], ...], body: Callable[[], int]) -> int:
    """Run ``body``; errors a user can cause print one line (no traceback) and exit with status 2."""
    try:
        return body()
    except (UserError, *errors) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def size_arg(text: str, multiple: int | None = None) -> tuple[int, int]:
    from vsa.common.video import SIZE_MULTIPLE, parse_size

    try:
        return parse_size(text, SIZE_MULTIPLE if multiple is None else multiple)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def render_size_arg(text: str) -> tuple[int, int]:
    """``HxW`` of any size from 8 to 8192 a side: INR-V renders at any resolution."""
    h, w = size_arg(text, multiple=1)
    if not (8 <= h <= 8192 and 8 <= w <= 8192):
        raise argparse.ArgumentTypeError(f"{text!r}: sides must be in [8, 8192]")
    return h, w


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1)")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:  # (NaN too)
        raise argparse.ArgumentTypeError(f"{text} must be 0 or more")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def link_spec(text: str):
    """``--link``: an emulated link (`vsa.common.link.LinkSpec`)."""
    from vsa.common.link import LinkSpec

    try:
        return LinkSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def passes(text: str) -> int:
    """``--iterations``: reprojection passes, 1 to `vsa.common.registry.MAX_ITERATIONS`."""
    from vsa.common.registry import MAX_ITERATIONS  # here, so that parsing --help needs no torch

    value = int(text)
    if not 1 <= value <= MAX_ITERATIONS:
        raise argparse.ArgumentTypeError(f"{text} passes: choose 1 to {MAX_ITERATIONS}")
    return value


def address(text: str) -> tuple[str, int]:
    from vsa.common.webrtc import parse_address

    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def setup_logging(verbose: int) -> None:
    import logging

    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose >= 0 else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    # aiortc and aioice are chatty at INFO.
    for name in ("aiortc", "aioice"):
        logging.getLogger(name).setLevel(logging.WARNING if verbose < 2 else logging.DEBUG)
