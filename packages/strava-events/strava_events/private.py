"""Files only the receiver's user may read: folders 0700, files 0600, also when they exist.

``Path.mkdir(mode=0o700, exist_ok=True)`` leaves an existing folder as it is (and gives
missing parents the umask's mode), so a folder made by an earlier version, or by hand,
would stay readable by everyone: these helpers tighten what is already there too.
"""

from __future__ import annotations

import os
from pathlib import Path


def private_folder(folder: Path) -> Path:
    """Create ``folder`` if missing and make it 0700 (its parents are left alone)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if folder.stat().st_mode & 0o777 != 0o700:
        folder.chmod(0o700)
    return folder


def private_file(path: Path) -> Path:
    """Create ``path`` empty if missing and make it 0600 (its content is left alone)."""
    path = Path(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o777 != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path
