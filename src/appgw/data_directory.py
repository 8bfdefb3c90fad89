"""The data directory: it must exist, be writable and be private to the user that runs appgw.

It holds the store (with every PFX, encrypted), the master key, the admin certificate's key,
the access log and what the processes tell each other: no other user may read any of it.
`appgw serve` sets the umask to 077, so everything it and its children create is private;
`prepare` makes what an earlier version or an operator left readable private again.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

UMASK = 0o077  # new files 0600, new directories 0700
_OTHERS = 0o077  # the group and other permission bits


class DataDirectoryError(Exception):
    """The data directory cannot be used; the text says what and where, in one line."""


def prepare(data_dir: Path, owned: frozenset[str]) -> list[Path]:
    """Create `data_dir` if needed, check that it is writable, and take the group's and other
    users' permissions from it and from appgw's own entries in it: those `owned` names (see
    `_entries`) and everything below them (symbolic links are not followed; what else an
    operator keeps there is left alone). Returns what was changed."""
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise DataDirectoryError(
            f"cannot create the data directory {data_dir}: {error.strerror or error}"
        ) from None
    if not data_dir.is_dir():
        raise DataDirectoryError(f"the data directory {data_dir} is not a directory")
    if data_dir.stat().st_mode & stat.S_ISVTX:
        raise DataDirectoryError(
            f"the data directory {data_dir} is a shared directory (sticky bit, like /tmp): give "
            "appgw a directory of its own, e.g. a new one inside it"
        )
    _check_writable(data_dir)
    changed = []
    for path in _entries(data_dir, owned):
        status = path.lstat()
        mode = stat.S_IMODE(status.st_mode)
        if stat.S_ISLNK(status.st_mode) or not mode & _OTHERS:
            continue
        try:
            os.chmod(path, mode & ~_OTHERS)
        except OSError as error:
            wanted = "700" if stat.S_ISDIR(status.st_mode) else "600"
            raise DataDirectoryError(
                f"{path} is open to other users (mode {mode:o}) and cannot be made private "
                f"({error.strerror or error}); run 'chmod {wanted} {path}' as its owner (uid "
                f"{status.st_uid})"
            ) from None
        changed.append(path)
    return changed


def _check_writable(data_dir: Path) -> None:
    probe = data_dir / f".appgw-write-check-{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as error:
        raise DataDirectoryError(
            f"the data directory {data_dir} is not writable: {error.strerror or error}"
        ) from None
    with contextlib.suppress(OSError):
        probe.unlink()


def _entries(data_dir: Path, owned: frozenset[str]) -> list[Path]:
    """The directory, its entries that are appgw's (named in `owned`, or such a name followed
    by '.' or '-': appgw.db-wal, access.log.1) and everything below those, without following
    symbolic links."""
    found = [data_dir]
    for top in sorted(data_dir.iterdir()):
        if top.is_symlink() or not any(
            top.name == name or top.name.startswith((f"{name}.", f"{name}-")) for name in owned
        ):
            continue
        found.append(top)
        for root, directories, files in os.walk(top):
            found += [Path(root, entry) for entry in (*directories, *files)]
    return found
