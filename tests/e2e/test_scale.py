"""What a worker needs to hold many clients (bench/scale.py measures how many and at what cost)."""

from __future__ import annotations

import re
import resource
from pathlib import Path

import pytest

from helpers import TOKEN, start_serve

pytestmark = pytest.mark.slow

LOW_SOFT_LIMIT = 256  # what some distributions still give a login shell


def test_worker_raises_its_open_file_limit_to_the_hard_limit(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= LOW_SOFT_LIMIT:
        pytest.skip(f"the hard limit ({hard}) leaves nothing to raise")
    # Children inherit limits: `appgw serve` and its worker start with the low soft limit.
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_SOFT_LIMIT, hard))
    try:
        server = start_serve(tmp_path / "data", {"APPGW_ADMIN_TOKEN": TOKEN})
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        ready = re.search(r"appgw worker \S+ \(pid (\d+)\) ready", server.log_path.read_text())
        assert ready is not None
        limits = Path(f"/proc/{ready[1]}/limits").read_text()
        found = re.search(r"Max open files\s+(\S+)\s+(\S+)", limits)
        assert found is not None
        expected = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
        assert (found[1], found[2]) == (expected, expected)
    finally:
        server.stop()
