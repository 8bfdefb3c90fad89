from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.harness import Gateway
from helpers import TOKEN, start_serve


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One `appgw serve` with two workers per test module; tests reconfigure it by PUT."""
    data_dir: Path = tmp_path_factory.mktemp("gateway") / "data"
    server = start_serve(data_dir, {"APPGW_ADMIN_TOKEN": TOKEN}, workers=2)
    try:
        yield Gateway(server, workers=2)
    finally:
        server.stop()
