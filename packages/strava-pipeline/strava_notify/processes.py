"""Finding pipeline processes of this project that are still alive.

After a SIGKILL of ``meltano`` its job row stays "running" for about five minutes and
Meltano refuses the same state id; ``--force`` overrides that, but is only honest when
nothing of the killed run is still writing (a tap or target orphaned by the kill keeps
going). This module finds such processes: ``tap-strava``, ``mapper-strava-tally``, any
``target-*``, and ``meltano run``/``el``/``elt``/``schedule``, belonging to *this* project
(working directory, a path under the project on the command line, or
``MELTANO_PROJECT_ROOT``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import psutil

PLUGIN_EXECUTABLES = frozenset({"tap-strava", "mapper-strava-tally"})
MELTANO_PIPELINE_COMMANDS = frozenset({"run", "el", "elt", "schedule"})


@dataclasses.dataclass(frozen=True)
class PipelineProcess:
    """A live process of the pipeline: pid and what it is."""

    pid: int
    what: str

    def __str__(self) -> str:
        """``pid 1234 (target-postgres)``."""
        return f"pid {self.pid} ({self.what})"


def _role(cmdline: list[str]) -> str | None:
    """What a command line is, if it is a pipeline process (a script runs as ``python x``)."""
    for position, arg in enumerate(cmdline[:2]):
        name = Path(arg).name
        if name in PLUGIN_EXECUTABLES or name.startswith("target-"):
            return name
        if name == "meltano":
            # The command follows the global options (``--environment prod run ...``).
            words = [a for a in cmdline[position + 1 :] if not a.startswith("-")][:2]
            command = next((w for w in words if w in MELTANO_PIPELINE_COMMANDS), None)
            if command:
                return f"meltano {command}"
    return None


def _belongs_to(proc: psutil.Process, cmdline: list[str], roots: set[str]) -> bool:
    """Started in this project: by its cwd, its arguments, or MELTANO_PROJECT_ROOT."""
    if any(arg == root or arg.startswith(root + os.sep) for arg in cmdline for root in roots):
        return True
    try:
        if str(Path(proc.cwd()).resolve()) in roots:
            return True
    except (psutil.Error, OSError):
        pass
    try:
        project_root = proc.environ().get("MELTANO_PROJECT_ROOT")
    except (psutil.Error, OSError):
        return False
    return bool(project_root) and str(Path(project_root).resolve()) in roots


def pipeline_processes(project_dir: Path) -> list[PipelineProcess]:
    """Live pipeline processes of the project, this job and its ancestors excluded."""
    roots = {str(project_dir), str(project_dir.resolve())}
    own = {os.getpid()} | {p.pid for p in psutil.Process().parents()}
    found: list[PipelineProcess] = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            info = proc.info
            if info["pid"] in own or info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = list(info["cmdline"] or [])
            what = _role(cmdline)
            if what and _belongs_to(proc, cmdline, roots):
                found.append(PipelineProcess(pid=int(info["pid"]), what=what))
        except (psutil.Error, OSError):
            continue
    return found
