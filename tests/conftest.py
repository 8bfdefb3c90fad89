from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from helpers import Api, Pfx, cer_b64, make_pfx, running_api


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our own variables from the developer's shell must not leak into tests."""
    for name in ("APPGW_MASTER_KEY", "APPGW_ADMIN_TOKEN", "APPGW_DATA_DIR", "APPGW_STORE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def backend_ca() -> trustme.CA:
    return trustme.CA(organization_name="Backend Root")


@pytest.fixture(scope="session")
def pfx(ca: trustme.CA) -> Pfx:
    return make_pfx(ca, "www.contoso.com")


@pytest.fixture(scope="session")
def root_cer(backend_ca: trustme.CA) -> str:
    return cer_b64(backend_ca)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with running_api(tmp_path / "data") as running:
        yield running
