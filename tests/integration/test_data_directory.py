"""The data directory of a real `appgw serve`: private (0700, files 0600) whoever made it, a
clear refusal when it cannot be made private or written, never a traceback."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from appgw.observability import metrics_directory
from backends import free_port
from builders import GatewayBuilder
from helpers import TOKEN, gateway_url, serving

pytestmark = pytest.mark.slow


def modes(directory: Path) -> dict[str, int]:
    """Relative path -> permission bits, of the directory and everything below it."""
    found = {".": stat.S_IMODE(directory.stat().st_mode)}
    for path in directory.rglob("*"):
        if not path.is_symlink():
            found[str(path.relative_to(directory))] = stat.S_IMODE(path.stat().st_mode)
    return found


def loose(directory: Path) -> dict[str, str]:
    return {name: f"{mode:o}" for name, mode in modes(directory).items() if mode & 0o077}


def run_serve(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`appgw serve` that is expected to refuse to start (30 s at most)."""
    return subprocess.run(
        [sys.executable, "-m", "appgw", "serve", "--data-dir", str(data_dir),
         "--admin-listen", "127.0.0.1:0", "--workers", "1", *args],
        capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "APPGW_ADMIN_TOKEN": TOKEN},
    )  # fmt: skip


def use(data_dir: Path) -> None:
    """Start serve, write a gateway (store, WAL, state, access log, metrics), stop."""
    with serving(data_dir, {"APPGW_ADMIN_TOKEN": TOKEN}) as server:
        builder = GatewayBuilder().pool("p", "10.0.0.4").settings("s", 80)
        builder.listener("l", free_port()).rule("r", "l", pool="p", settings="s")
        answer = httpx.put(
            f"{server.base_url}{gateway_url()}",
            json=builder.build(),
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
        )
        assert answer.status_code == 201, answer.text
        assert not loose(data_dir), loose(data_dir)  # also while it runs (WAL, -shm)


def test_everything_serve_writes_is_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    use(data_dir)
    names = modes(data_dir)
    assert {"appgw.db", "master.key", "state", "access.log"} <= set(names), names
    assert not loose(data_dir), loose(data_dir)
    assert names["."] == 0o700
    metrics = metrics_directory(data_dir)  # in shared memory, where there is some
    if metrics.exists():
        assert not loose(metrics), loose(metrics)


def test_a_data_directory_others_can_read_is_made_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    use(data_dir)
    for path in [data_dir, *data_dir.rglob("*")]:
        if path.name != "master.key":  # a readable key is refused, not fixed: see below
            path.chmod(0o755 if path.is_dir() else 0o644)
    (data_dir / "notes.txt").write_text("left here by the operator")
    (data_dir / "notes.txt").chmod(0o664)
    (data_dir / "access.log.1").write_text("{}\n")  # a rotated access log
    (data_dir / "access.log.1").chmod(0o644)
    assert loose(data_dir)
    with serving(data_dir, {"APPGW_ADMIN_TOKEN": TOKEN}) as server:
        assert "made the data directory private" in server.banner, server.banner
        # appgw's own files are private again; what the operator keeps there is theirs.
        assert loose(data_dir) == {"notes.txt": "664"}, loose(data_dir)


def test_a_shared_directory_is_not_taken_as_the_data_directory(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    refused = run_serve(shared)
    assert refused.returncode != 0
    assert "shared directory" in refused.stderr, refused.stderr
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777  # left as it was


def test_a_master_key_others_could_read_is_still_refused(tmp_path: Path) -> None:
    """A key that was readable may have been read: the operator decides (chmod, or a new key
    and a new store), appgw does not hide it."""
    data_dir = tmp_path / "data"
    use(data_dir)
    (data_dir / "master.key").chmod(0o644)
    refused = run_serve(data_dir)
    assert refused.returncode != 0
    assert "readable by others" in refused.stderr, refused.stderr


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """`path` cannot be changed, even by root (chattr +i), for the duration."""
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i does not work here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_file_that_cannot_be_made_private_is_a_clear_refusal(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    use(data_dir)
    access_log = data_dir / "access.log"
    access_log.chmod(0o644)
    with immutable(access_log):
        refused = run_serve(data_dir)
    assert refused.returncode != 0
    assert str(access_log) in refused.stderr, refused.stderr
    assert "chmod 600" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """`directory` read-only: a read-only bind mount as root (who ignores modes), else 0500."""
    if os.geteuid() != 0:
        directory.chmod(0o500)
        try:
            yield
        finally:
            directory.chmod(0o700)
        return
    subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(directory)], check=True)


@pytest.mark.parametrize("used", [True, False], ids=["used-before", "empty"])
def test_a_read_only_data_directory_is_one_clear_line(tmp_path: Path, used: bool) -> None:
    data_dir = tmp_path / "data"
    if used:
        use(data_dir)
    else:
        data_dir.mkdir(mode=0o700)
    with read_only(data_dir):
        refused = run_serve(data_dir)
    one_line_refusal(refused, f"appgw: the data directory {data_dir} is not writable")


def test_a_data_directory_that_cannot_be_created_is_one_clear_line(tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    parent.mkdir(mode=0o700)
    data_dir = parent / "deeper" / "data"
    with read_only(parent):
        refused = run_serve(data_dir)
    one_line_refusal(refused, f"appgw: cannot create the data directory {data_dir}")


def one_line_refusal(refused: subprocess.CompletedProcess[str], beginning: str) -> None:
    assert refused.returncode != 0
    assert refused.stderr.startswith(beginning), refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
