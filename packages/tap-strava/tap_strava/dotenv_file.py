"""The project's ``.env``: read and update it exactly as Meltano will read it back.

Meltano loads ``.env`` with python-dotenv's :func:`dotenv.dotenv_values`, so this module
uses the same library: reading with ``dotenv_values`` means the command sees the values
the pipeline will see (a line python-dotenv cannot parse is one Meltano ignores too), and
updating through python-dotenv's own parser keeps every other line byte for byte.

Why not :func:`dotenv.set_key`: it writes one key per call (two updates would be two
rewrites, and a crash between them would leave a client id without its token), keeps the
mode of an existing file (a ``.env`` created 0644 would stay readable by everyone while it
holds secrets) and does not fsync. The update therefore goes through
:func:`tap_strava.files.write_atomically`, like the token store: one rename, mode 0600.
"""

from __future__ import annotations

import io
import re
import typing as t

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from tap_strava.errors import AuthorizeError
from tap_strava.files import write_atomically

if t.TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

#: Written bare (Strava's ids and tokens are like this); anything else is double-quoted.
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:/@%+=,-]*$")
#: What python-dotenv expands when it reads (``${NAME}``, ``${NAME:-default}``), quoted
#: or not; no quoting protects it, so such a value cannot be stored faithfully.
_INTERPOLATION = "${"


def read_env_file(path: Path) -> dict[str, str]:
    """The values of a dotenv file as Meltano reads them (keys without ``=`` left out).

    A missing file is empty; an unreadable one is an error the user can fix.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        msg = f"Cannot read {path} ({exc.strerror}): fix its permissions or pass --env-file"
        raise AuthorizeError(msg) from exc
    values = dotenv_values(stream=io.StringIO(text))
    return {key: value for key, value in values.items() if value is not None}


def project_environment(project_dir: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The settings every command of the project reads: its ``.env``, then the environment.

    How the project's commands that are not Meltano plugins (``strava-job``, the data
    commands, the dashboard) see their settings, as Meltano does for its plugins: ``.env``
    read by python-dotenv, a variable of the environment winning over it. The receiver,
    which does not depend on the tap, does the same with the same library.
    """
    return {**read_env_file(project_dir / ".env"), **environ}


def format_env_value(value: str) -> str:
    r"""Bare when safe, else double-quoted on one line, escaped as python-dotenv decodes.

    Inside double quotes python-dotenv decodes ``\\``, ``\"``, ``\n``, ``\r`` (and a few
    more C escapes) and nothing else: escaping every backslash and double quote returns
    the value unchanged with its ``#``, spaces and single quotes; writing line breaks as
    ``\n`` and ``\r`` keeps one line per key and a ``\r\n`` intact (a file read in text
    mode would turn a raw one into ``\n``).
    """
    if _SAFE_VALUE.match(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r") + '"'


def update_env_file(path: Path, updates: Mapping[str, str]) -> None:
    """Set ``updates`` in a dotenv file in place: other lines, comments and order are kept.

    The first line of each key is replaced, later duplicates are dropped (python-dotenv
    lets the last one win, so a stale duplicate would hide the new value) and new keys are
    appended. The file is rewritten atomically with mode 0600, as it holds secrets; a
    missing file is created; a symlinked ``.env`` is followed. Nothing is written if a
    value would not read back identically or a line of a key to update cannot be parsed.
    """
    target = path.resolve() if path.is_symlink() else path
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    except OSError as exc:
        msg = f"Cannot read {target} ({exc.strerror}): fix its permissions or pass --env-file"
        raise AuthorizeError(msg) from exc
    for key, value in updates.items():
        _check_value(target, key, value)
    payload = _updated(target, text, updates)
    _check_round_trip(target, payload, updates)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, payload)
    except OSError as exc:
        msg = f"Cannot write {target} ({exc.strerror}): pass --env-file with a writable path"
        raise AuthorizeError(msg) from exc


def _updated(target: Path, text: str, updates: Mapping[str, str]) -> str:
    """``text`` with ``updates`` applied, every other statement kept as it was written."""
    pending = dict(updates)
    out: list[str] = []
    for binding in parse_stream(io.StringIO(text)):
        original = binding.original.string
        if binding.error:
            _refuse_broken_line(target, original, binding.original.line, updates)
        if binding.key is not None and binding.key in updates:
            # python-dotenv counts the blank lines above a statement as part of it.
            out.append(_blank_lines_before(original))
            if binding.key in pending:
                out.append(f"{binding.key}={format_env_value(pending.pop(binding.key))}\n")
            continue  # a duplicate of a key already written: drop it, it would win
        out.append(original)
    kept = "".join(out)
    if kept and not kept.endswith("\n"):
        kept += "\n"  # the last line had none: the appended keys start a line of their own
    return kept + "".join(f"{key}={format_env_value(value)}\n" for key, value in pending.items())


def _blank_lines_before(statement: str) -> str:
    """The whole blank lines that python-dotenv's parser attached to a statement."""
    lead = statement[: len(statement) - len(statement.lstrip())]
    return lead[: lead.rfind("\n") + 1]


def _refuse_broken_line(target: Path, line: str, number: int, updates: Mapping[str, str]) -> None:
    """Stop when a line of a key to update is not dotenv syntax.

    Meltano skips such a line, so its value (say ``TAP_STRAVA_ATHLETES``) was never read;
    appending a new line would silently drop what the user meant to keep there.
    """
    match = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=", line)
    if match and match.group(1) in updates:
        msg = (
            f"Line {number} of {target} ({match.group(1)}) is not valid dotenv syntax (an "
            "unescaped quote?), so Meltano cannot read it: fix or remove it and run again. "
            "No token was written"
        )
        raise AuthorizeError(msg)


def _check_value(target: Path, key: str, value: str) -> None:
    """Refuse a value python-dotenv would change on reading (``${...}`` is expanded)."""
    if _INTERPOLATION in value:
        msg = (
            f"The value for {key} contains '${{', which python-dotenv (and so Meltano) "
            f"expands when it reads {target}: remove it and run again. No token was written"
        )
        raise AuthorizeError(msg)


def _check_round_trip(target: Path, payload: str, updates: Mapping[str, str]) -> None:
    """Read the new text back as Meltano will before it replaces the file."""
    values = dotenv_values(stream=io.StringIO(payload), interpolate=False)
    for key, value in updates.items():
        if values.get(key) != value:
            msg = (
                f"The value for {key} would not read back unchanged from {target}: "
                "please report this. No token was written"
            )
            raise AuthorizeError(msg)
