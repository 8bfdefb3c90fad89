"""The instance's copy of what it serves (state/sources.py): whole, as of one seq, secrets
sealed as the store seals them."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

from appgw.state.sources import AppliedSources, Source
from appgw.store.secrets import MasterKey
from appgw.store.sql import GatewayVersion, SqlStore

GATEWAY = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/applicationGateways/gw"


def source(version: int, resource_id: str = GATEWAY) -> Source:
    return Source(
        GatewayVersion(
            resource_id=resource_id,
            version=version,
            seq=10 + version,
            etag=f'W/"{version}"',
            document={"location": "westeurope", "properties": {"n": version}},
            operational_state="Running",
            deleted=False,
            created_at=datetime(2026, 12, 3, 4, 0, version, tzinfo=UTC),
            actor="admin",
        ),
        sealed_secrets=bytes([version]) * 40,
    )


def test_what_is_saved_is_what_a_starting_worker_loads(tmp_path: Path) -> None:
    path = tmp_path / "applied-sources.json"
    writer = AppliedSources(path)
    writer.applied(GATEWAY.casefold(), source(1))
    writer.applied("other", source(3, GATEWAY.replace("/gw", "/other")))
    writer.applied(GATEWAY.casefold(), source(2))  # a newer version replaces the older
    writer.save(42)

    loaded = AppliedSources(path).load()

    assert loaded is not None
    seq, sources = loaded
    assert seq == 42
    assert sorted(sources, key=lambda s: s.version.version) == [
        source(2),
        source(3, GATEWAY.replace("/gw", "/other")),
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_deleted_gateway_leaves_the_copy(tmp_path: Path) -> None:
    path = tmp_path / "applied-sources.json"
    writer = AppliedSources(path)
    writer.applied("gw", source(1))
    writer.save(11)
    writer.applied("gw", None)
    writer.save(12)

    assert AppliedSources(path).load() == (12, [])


def test_secrets_stay_sealed_in_the_file_and_the_store_opens_them(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'appgw.db'}", MasterKey(os.urandom(32)))
    secrets = {"sslCertificates": {"cert": {"password": "Sentinel-Pfx-Password-42"}}}
    store.commit(
        GATEWAY, GATEWAY.casefold(), {"properties": {}}, secrets,
        operational_state="Running", actor="admin",
    )  # fmt: skip
    version = store.current(GATEWAY.casefold())
    assert version is not None
    path = tmp_path / "applied-sources.json"
    writer = AppliedSources(path)
    writer.applied(GATEWAY.casefold(), Source(version, store.sealed_secrets(version)))
    writer.save(version.seq)

    assert "Sentinel-Pfx-Password-42" not in path.read_text()
    loaded = AppliedSources(path).load()
    assert loaded is not None
    (copy,) = loaded[1]
    assert store.open_secrets(copy.version, copy.sealed_secrets) == store.secrets(version)
    store.close()


def test_no_copy_or_one_that_cannot_be_read_is_no_copy(tmp_path: Path) -> None:
    path = tmp_path / "applied-sources.json"
    assert AppliedSources(path).load() is None
    path.write_text("{not json")
    assert AppliedSources(path).load() is None
    path.write_text(json.dumps({"format": 99, "seq": 1, "gateways": {}}))
    assert AppliedSources(path).load() is None  # another version's shape is not guessed at
    path.write_text(json.dumps({"format": 1, "seq": 1, "gateways": {"gw": {"version": 1}}}))
    assert AppliedSources(path).load() is None
