"""Data flows one way: the data plane's hot path imports no control-plane code."""

from __future__ import annotations

import subprocess
import sys


def test_hot_path_imports_no_control_plane() -> None:
    code = (
        "import sys, appgw.dataplane.proxy, appgw.dataplane.runtime, appgw.dataplane.upstream;"
        "print(sorted(m for m in sys.modules if m.startswith(('appgw.control', 'appgw.api',"
        " 'appgw.store', 'fastapi', 'sqlalchemy', 'pydantic'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stdout
