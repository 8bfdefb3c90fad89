"""Old versions do not keep their PFX and password for ever: a commit purges the secrets of all
but the newest N versions of a gateway (all of them once it is deleted), while the revisions
still show every document. Real `appgw serve`, real SQLite file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from backends import free_port, wait_until
from helpers import TOKEN, Pfx, ServeProcess, gateway_url, serving, skeleton

pytestmark = pytest.mark.slow

REVISIONS = gateway_url().replace("?", "/revisions?")


def stored_secrets(data_dir: Path) -> dict[int, int]:
    """Version -> size of its stored (encrypted) secrets; 0 once purged."""
    with sqlite3.connect(f"file:{data_dir / 'appgw.db'}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT version, length(secrets) FROM gateway_versions ORDER BY version"
        ).fetchall()
    connection.close()
    return dict(rows)


def client(server: ServeProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    )


def put_versions(api: httpx.Client, pfx: Pfx, root_cer: str, count: int) -> None:
    """The gateway with its PFX, then GET -> change a tag -> PUT (the PFX kept, as Azure's
    tools do) until there are `count` versions."""
    created = api.put(gateway_url(), json=skeleton(pfx, root_cer, port=free_port()))
    assert created.status_code == 201, created.text
    for index in range(count - 1):
        current = api.get(gateway_url()).json()
        current["tags"] = {"n": str(index)}
        answer = api.put(gateway_url(), json=current)
        assert answer.status_code == 200, answer.text


def served(api: httpx.Client, answer: httpx.Response) -> bool:
    status = api.get(
        httpx.URL(answer.headers["Azure-AsyncOperation"]).path, params={"api-version": "2026-03-01"}
    )
    return bool(status.json()["status"] == "Succeeded")


@pytest.mark.parametrize(
    ("how", "kept"),
    [(("--keep-secret-versions", "3"), 3), ((), 10)],
    ids=["flag-3", "default-10"],
)
def test_only_the_newest_versions_keep_their_secrets(
    tmp_path: Path, pfx: Pfx, root_cer: str, how: tuple[str, ...], kept: int
) -> None:
    data_dir = tmp_path / "data"
    total = kept + 2
    with serving(data_dir, {"APPGW_ADMIN_TOKEN": TOKEN}, args=how) as server, client(server) as api:
        put_versions(api, pfx, root_cer, total)
        sizes = stored_secrets(data_dir)
        assert [v for v, size in sizes.items() if size == 0] == [1, 2], sizes
        assert all(sizes[v] > 0 for v in range(3, total + 1)), sizes
        # Every document is still in the history; the current certificate still works.
        revisions = api.get(REVISIONS).json()["value"]
        assert [r["version"] for r in revisions] == list(range(1, total + 1))
        assert all(r["gateway"]["properties"]["sslCertificates"] for r in revisions)
        current = api.get(gateway_url()).json()
        again = api.put(gateway_url(), json=current)
        assert again.status_code == 200, again.text
        wait_until(lambda: served(api, again), timeout=30, what="the data plane serves it")
        assert pfx.password.encode() not in (data_dir / "appgw.db").read_bytes()


def test_the_environment_variable_sets_it_and_a_delete_purges_all(
    tmp_path: Path, pfx: Pfx, root_cer: str
) -> None:
    data_dir = tmp_path / "data"
    env = {"APPGW_ADMIN_TOKEN": TOKEN, "APPGW_KEEP_SECRET_VERSIONS": "2"}
    with serving(data_dir, env) as server, client(server) as api:
        put_versions(api, pfx, root_cer, 3)
        assert [v for v, size in stored_secrets(data_dir).items() if size == 0] == [1]
        assert api.delete(gateway_url()).status_code == 202
        assert set(stored_secrets(data_dir).values()) == {0}
        assert len(api.get(REVISIONS).json()["value"]) == 4


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_a_keep_count_below_one_is_refused(tmp_path: Path, value: str) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "appgw", "serve", "--data-dir", str(tmp_path / "data"),
         "--admin-listen", "127.0.0.1:0", "--workers", "1"],
        capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "APPGW_KEEP_SECRET_VERSIONS": value},
    )  # fmt: skip
    assert refused.returncode != 0
    assert "APPGW_KEEP_SECRET_VERSIONS" in refused.stderr, refused.stderr
