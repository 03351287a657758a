"""What the spool target and the replay tap share on the command line.

Both are tiny Singer programs on the standard library (no SDK target or tap: those parse,
validate and re-serialize every message, and the point here is to keep each line
byte for byte). Meltano calls them with ``--config FILE`` (the tap also with ``--state
FILE``); ``--about`` prints what they are. Errors are one line naming cause and fix, exit
code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import typing as t
from pathlib import Path

from strava_spool.folder import SpoolError

SPOOL_DIR_ENV = "STRAVA_SPOOL_DIR"


class UsageError(Exception):
    """A configuration problem, worded as one line with its fix."""


def parser(prog: str, description: str, *, state: bool) -> argparse.ArgumentParser:
    """The Singer options Meltano passes."""
    parse = argparse.ArgumentParser(prog=prog, description=description)
    parse.add_argument("--config", type=Path, action="append", default=[])
    parse.add_argument("--about", action="store_true")
    parse.add_argument("--format", default="json")
    if state:
        parse.add_argument("--state", type=Path, default=None)
        # Meltano passes a catalog to taps that declare one; this tap has none to honour.
        parse.add_argument("--catalog", type=Path, default=None)
        parse.add_argument("--properties", type=Path, default=None)
        parse.add_argument("--discover", action="store_true")
    else:
        parse.add_argument("--input", type=Path, default=None)
    return parse


def read_json_file(path: Path, what: str) -> dict[str, t.Any]:
    """A JSON object from a file Meltano wrote (config or state)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8") or "{}")
    except OSError as exc:
        msg = f"cannot read the {what} file {path} ({exc.strerror})"
        raise UsageError(msg) from exc
    except ValueError as exc:
        msg = f"the {what} file {path} is not JSON ({exc}): pass a JSON object"
        raise UsageError(msg) from exc
    if not isinstance(value, dict):
        msg = f"the {what} file {path} holds {type(value).__name__}, not a JSON object"
        raise UsageError(msg)
    return value


def load_config(paths: t.Sequence[Path]) -> dict[str, t.Any]:
    """Every ``--config`` file merged; a later one wins, like the SDK."""
    config: dict[str, t.Any] = {}
    for path in paths:
        config.update(read_json_file(path, "config"))
    return config


def spool_dir(config: t.Mapping[str, t.Any], environ: t.Mapping[str, str] = os.environ) -> Path:
    """``spool_dir``, else ``$STRAVA_SPOOL_DIR``, else ``<project>/spool/<environment>``.

    One variable for the spool target and every replay (Meltano would want one per
    plugin, inherited ones included); the default keeps each environment's spools apart,
    as its Meltano states are.
    """
    raw = str(config.get("spool_dir") or environ.get(SPOOL_DIR_ENV) or "").strip()
    if raw:
        return Path(raw).expanduser()
    root = environ.get("MELTANO_PROJECT_ROOT")
    if not root:
        msg = f"no spool folder: set spool_dir in the config (or {SPOOL_DIR_ENV})"
        raise UsageError(msg)
    return Path(root) / "spool" / (environ.get("MELTANO_ENVIRONMENT") or "default")


def setup_logging(prog: str) -> logging.Logger:
    """Log lines on stderr (Meltano shows them as the plugin's output)."""
    logger = logging.getLogger(prog)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"{prog} %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def run_main(prog: str, body: t.Callable[[], int]) -> None:
    """Run ``body``; errors end as one line on stderr and exit code 1."""
    try:
        code = body()
    except (UsageError, SpoolError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        code = 1
    except BrokenPipeError:
        # The reader (Meltano, the target) is gone; it reports its own failure.
        print(f"{prog}: error: the output pipe was closed by its reader", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print(f"{prog}: error: interrupted", file=sys.stderr)
        code = 130
    except OSError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)
