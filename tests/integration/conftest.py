from __future__ import annotations

from collections.abc import Iterator

import pytest

from helpers import TOKEN, ServeProcess, start_serve
from postgresql import postgres_fixture  # noqa: F401  (the session's PostgreSQL server)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One real `appgw serve` (one worker) per test module, for the CLI tests."""
    running = start_serve(
        tmp_path_factory.mktemp("serve") / "data", {"APPGW_ADMIN_TOKEN": TOKEN}, workers=1
    )
    try:
        yield running
    finally:
        running.stop()
