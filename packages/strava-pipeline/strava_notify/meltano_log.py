"""Reading ``meltano --log-format=json run`` output: which step failed, and why.

``meltano run`` exits 1 for any failed block, whatever failed. Its own summary is not
enough either: when a target dies mid-load Meltano itself crashes on the broken pipe and
never logs "Block run completed ... success=False". So the job reads the evidence the
plugins left on stderr: the *first* real error of the failing block (a ``tap-strava:
error: ...`` line, a traceback's exception line) names the step; a ``BrokenPipeError`` is
only the echo of a consumer that died first. A plugin that wrote no error line at all
(SIGKILLed by the OOM killer) is named with how it ended (its exit code from Meltano's
``exit_codes``), never with its last info line as "the cause".

``tests/test_notify_meltano_output.py`` checks all of this on real ``meltano run`` output.
"""

from __future__ import annotations

import dataclasses
import json
import re
import signal
import typing as t

# "tap-strava: error: ..." (the tap's one-line user errors), "Error: ..." (click).
_ERROR_LINE = re.compile(r"^(?:[\w.-]+: )?error: \S", re.IGNORECASE)
# The last line of a Python traceback: "psycopg.OperationalError: connection failed".
_EXCEPTION_LINE = re.compile(
    r"^(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Failure)\b(?::|$)"
)
_TRACEBACK_START = "Traceback (most recent call last)"
_ALREADY_RUNNING = re.compile(r"pipeline is already running", re.IGNORECASE)
_RUNNING_JOB = re.compile(r"Running job with name '([^']+)'")
_ECHO_ERRORS = ("BrokenPipeError", "ConnectionResetError", "SIGPIPE")


@dataclasses.dataclass
class PluginTrail:
    """What one plugin of one block wrote on stderr, as much as the job needs."""

    name: str
    role: str  # "tap", "mapper", "target"
    block: int
    last_line: str = ""
    first_error_at: int | None = None  # output line of the first real (non-echo) error
    own_error: str = ""  # the plugin's own one-line error ("tap-strava: error: ...")
    exception: str = ""  # the latest real exception line of a traceback
    echo: str = ""  # a BrokenPipeError and the like: a consequence, not a cause

    @property
    def cause(self) -> str:
        """The best one-line cause this plugin gave."""
        return self.own_error or self.exception or self.echo or self.last_line


@dataclasses.dataclass
class BlockFailure:
    """Meltano's own verdict on a failed block (when it got that far)."""

    block: int
    err: str
    exit_codes: dict[str, t.Any]


@dataclasses.dataclass
class FailedStep:
    """The step the notification blames, with its one-line cause."""

    kind: str  # "tap", "mapper", "target", "meltano", "already_running"
    plugin: str  # plugin name, or "meltano"
    cause: str
    block: int | None = None
    state_id: str | None = None


def step_label(kind: str, plugin: str) -> str:
    """How a notification names a step: ``Postgres target (target-postgres)``."""
    if kind == "target":
        known = {
            "target-csv": "CSV target",
            "target-csv-replay": "CSV target",
            "target-postgres": "Postgres target",
            "target-strava-spool": "spool target",
        }
        return f"{known.get(plugin, 'target')} ({plugin})"
    if kind == "tap":
        return f"tap ({plugin})"
    if kind == "mapper":
        return f"mapper ({plugin})"
    return "meltano itself"


def _role(event: t.Mapping[str, t.Any]) -> str:
    producer, consumer = bool(event.get("producer")), bool(event.get("consumer"))
    if producer and consumer:
        return "mapper"
    if consumer:
        return "target"
    return "tap"


def _is_error_line(text: str) -> bool:
    return bool(_ERROR_LINE.match(text) or _EXCEPTION_LINE.match(text))


def _exit_code(codes: t.Mapping[str, t.Any], key: str, name: str) -> int | None:
    """A plugin's exit code in Meltano's ``exit_codes`` (mappers: a list of {id: code})."""
    value = codes.get(key)
    if isinstance(value, int):
        return value
    entries = [dict(e) for e in value if isinstance(e, dict)] if isinstance(value, list) else []
    for entry in entries:
        if name in entry:
            return int(entry[name])
    # A mapper is listed by its mapping's name ("tally-csv"), its lines by the plugin's.
    return int(next(iter(entries[0].values()))) if len(entries) == 1 and entries[0] else None


def _silent_end(name: str, code: int | None, last_line: str) -> str:
    """How a plugin that wrote no error line ended: its exit code, not its last log line.

    Real case: a tap killed by SIGKILL (out of memory, or stopped by hand) leaves an info
    line like "activities: reading activities ..." last; as "the cause" it misleads.
    """
    if code is not None and code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
        how += " (out of memory, or stopped by hand)"
    elif code:
        how = f"exited with code {code} without an error message"
    else:
        how = "failed without an error message"
    return f"{name} {how}" + (f"; its last line: {last_line}" if last_line else "")


class MeltanoLog:
    """Feed it meltano's output line by line; ask it what failed at the end."""

    def __init__(self) -> None:
        """Nothing seen yet."""
        self.lines = 0
        self.block = 0  # index of the block currently running (0-based)
        self.completed: list[dict[str, t.Any]] = []  # successful blocks, with their plugins
        self.failure: BlockFailure | None = None
        self.already_running: str | None = None
        self.state_ids: dict[int, str] = {}
        self.plugins: dict[tuple[int, str], PluginTrail] = {}
        self.meltano_errors: list[str] = []
        self.last_other_line = ""

    def feed(self, line: str) -> None:
        """One line of output (JSON from ``--log-format=json``, or anything else)."""
        self.lines += 1
        text = line.strip()
        if not text:
            return
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            # Not a log event: a crash before logging was set up, a usage error, ...
            self.last_other_line = text
            if _is_error_line(text):
                self.meltano_errors.append(text)
            return
        message = str(event.get("event") or "")
        if event.get("stdio") == "stderr" and event.get("name"):
            self._plugin_line(event, message)
        elif event.get("stdio") is None:
            self._meltano_event(event, message)

    def _plugin_line(self, event: t.Mapping[str, t.Any], message: str) -> None:
        name = str(event["name"])
        trail = self.plugins.get((self.block, name))
        if trail is None:
            # Discovery lines carry no producer/consumer flags: only the tap discovers.
            trail = PluginTrail(name=name, role=_role(event), block=self.block)
            self.plugins[(self.block, name)] = trail
        for part in (p.strip() for p in message.splitlines()):
            if not part:
                continue
            trail.last_line = part
            if part.startswith(_TRACEBACK_START) or not _is_error_line(part):
                continue
            if any(marker in part for marker in _ECHO_ERRORS):
                trail.echo = part
                continue
            if trail.first_error_at is None:
                trail.first_error_at = self.lines
            if _ERROR_LINE.match(part):
                trail.own_error = trail.own_error or part
            else:
                trail.exception = part

    def _meltano_event(self, event: t.Mapping[str, t.Any], message: str) -> None:
        if match := _RUNNING_JOB.search(message):
            self.state_ids[self.block] = match.group(1)
        if message == "Block run completed":
            if event.get("success"):
                plugins = sorted({name for (block, name) in self.plugins if block == self.block})
                self.completed.append({"block": self.block, "plugins": plugins})
                self.block += 1
            else:
                err = str(event.get("err") or "")
                self.failure = BlockFailure(
                    block=self.block, err=err, exit_codes=dict(event.get("exit_codes") or {})
                )
                if _ALREADY_RUNNING.search(err):
                    self.already_running = err
            return
        if _ALREADY_RUNNING.search(message):
            self.already_running = message
        if str(event.get("level")) in {"error", "critical"}:
            detail = message.strip()
            for exc in event.get("exception") or []:
                if isinstance(exc, dict) and exc.get("exc_type"):
                    value = str(exc.get("exc_value") or "").strip()
                    detail = f"{exc['exc_type']}: {value}" if value else str(exc["exc_type"])
            if detail:
                self.meltano_errors.append(detail.splitlines()[0])

    def completed_plugins(self) -> set[str]:
        """Every plugin of the blocks that completed (their targets committed)."""
        return {name for block in self.completed for name in block["plugins"]}

    def completed_loaders(self) -> list[str]:
        """Targets of the blocks that completed (their data is committed)."""
        return [
            name
            for block in self.completed
            for name in block["plugins"]
            if self.plugins[(block["block"], name)].role == "target"
        ]

    def failed_step(self) -> FailedStep:
        """The step to blame for a non-zero exit; "meltano" when no plugin left evidence."""
        if self.already_running:
            return FailedStep(
                kind="already_running",
                plugin="meltano",
                cause=self.already_running.splitlines()[0],
                block=self.block,
                state_id=self.state_ids.get(self.block),
            )
        trails = [tr for (block, _), tr in self.plugins.items() if block == self.block]
        real = [tr for tr in trails if tr.first_error_at is not None]
        if real:
            first = min(real, key=lambda tr: t.cast("int", tr.first_error_at))
            return self._step(first, first.cause)
        codes = self.failure.exit_codes if self.failure else {}
        for key, kind in (("loaders", "target"), ("mappers", "mapper"), ("extractors", "tap")):
            if key in codes:
                chosen = [tr for tr in trails if tr.role == kind]
                if key == "mappers":
                    failed = {k for entry in codes[key] or [] for k in dict(entry)}
                    chosen = [tr for tr in chosen if tr.name in failed] or chosen
                if chosen:
                    trail = chosen[0]
                    cause = trail.own_error or trail.exception or trail.echo
                    code = _exit_code(codes, key, trail.name)
                    return self._step(
                        trail, cause or _silent_end(trail.name, code, trail.last_line)
                    )
        cause = (
            self.failure_err()
            or (self.meltano_errors[-1] if self.meltano_errors else "")
            or self.last_other_line
            or "meltano exited with an error and left no message"
        )
        return FailedStep(
            kind="meltano", plugin="meltano", cause=cause, state_id=self.state_ids.get(self.block)
        )

    def failure_err(self) -> str:
        """Meltano's summary of the failed block ("Loader failed"), if it logged one."""
        return self.failure.err if self.failure else ""

    def _step(self, trail: PluginTrail, cause: str) -> FailedStep:
        return FailedStep(
            kind=trail.role,
            plugin=trail.name,
            cause=cause,
            block=trail.block,
            state_id=self.state_ids.get(trail.block),
        )
