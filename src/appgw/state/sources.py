"""What this instance serves, kept in the data directory for workers that start without a store.

A worker that starts while the store is unreachable (the replacement of one that died, say)
would otherwise serve nothing until the database returns. With this copy it serves the
gateways as the instance last applied them, then follows the store from the copy's seq when
the store answers again.

One file, replaced whole after each round the health monitor applies (one writer per
instance; workers only read it). It therefore always describes every gateway as of one store
seq, so following the store from that seq misses nothing. The copy keeps documents as the
store does (they hold no secrets) and secrets as the store does: encrypted under the master
key with the same associated data, so it adds no key and no plaintext secret. The file is
0600 in the private state directory.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from appgw.state.files import read_json, write_json
from appgw.store.sql import GatewayVersion

log = logging.getLogger("appgw.state")

SOURCES_FILE = "applied-sources.json"
FORMAT = 1  # bumped when the file's shape changes: an unknown one is ignored, not misread


@dataclass(frozen=True, slots=True)
class Source:
    """A version as the store keeps it: its document and its sealed secrets."""

    version: GatewayVersion
    sealed_secrets: bytes


class AppliedSources:
    """The copy: `applied` after each version a round applies, `save` at the round's end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sources: dict[str, Source] = {}  # gateway key -> what is served for it
        self._changed = False

    def applied(self, gateway_key: str, source: Source | None) -> None:
        """`source` is served for the gateway now (None: the gateway is gone)."""
        if source is None:
            self._changed |= self._sources.pop(gateway_key, None) is not None
        else:
            self._sources[gateway_key] = source
            self._changed = True

    def save(self, seq: int) -> None:
        """The copy as of `seq` (every version up to it applied). A failed write keeps the
        previous copy, which is still whole and consistent, just older."""
        if not self._changed:
            return
        document = {
            "format": FORMAT,
            "seq": seq,
            "gateways": {key: _encoded(source) for key, source in self._sources.items()},
        }
        if write_json(self.path, document):
            self._changed = False

    def load(self) -> tuple[int, list[Source]] | None:
        """(seq, sources) of the saved copy; None when there is none or it cannot be used."""
        saved = read_json(self.path)
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            return None
        try:
            seq = int(saved["seq"])
            sources = [_decoded(item) for item in saved["gateways"].values()]
        except (KeyError, TypeError, ValueError) as error:
            log.warning("ignoring %s, which cannot be read: %s", self.path, error)
            return None
        self._sources = {s.version.resource_id.casefold(): s for s in sources}
        return seq, sources


def _encoded(source: Source) -> dict[str, Any]:
    version = source.version
    return {
        "resourceId": version.resource_id,
        "version": version.version,
        "seq": version.seq,
        "etag": version.etag,
        "document": version.document,
        "operationalState": version.operational_state,
        "createdAt": version.created_at.isoformat(),
        "actor": version.actor,
        "sealedSecrets": base64.b64encode(source.sealed_secrets).decode(),
    }


def _decoded(item: dict[str, Any]) -> Source:
    version = GatewayVersion(
        resource_id=str(item["resourceId"]),
        version=int(item["version"]),
        seq=int(item["seq"]),
        etag=str(item["etag"]),
        document=dict(item["document"]),
        operational_state=str(item["operationalState"]),
        deleted=False,
        created_at=datetime.fromisoformat(item["createdAt"]),
        actor=str(item["actor"]),
    )
    return Source(version, base64.b64decode(item["sealedSecrets"], validate=True))
