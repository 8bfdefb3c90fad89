"""The REST API's store-backed tests again, with the store on PostgreSQL instead of SQLite.

They cover every store method the API uses: versions and etags, preconditions, history, listing
and paging, start/stop, tokens, the activity log (timestamps must come back in UTC though the
test server's time zone is not UTC), operations and encrypted secrets. Imported, not copied:
here the `api` fixture below replaces the SQLite one from conftest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_api_gateways import (  # noqa: F401  (collected again, with this module's `api`)
    test_activity_log_records_who_what_when_and_version,
    test_authentication_is_required,
    test_full_skeleton_round_trips,
    test_get_modify_put_keeps_stored_certificate_and_changes_etag,
    test_if_match_and_if_none_match,
    test_list_by_group_and_subscription_with_paging,
    test_patch_tags_delete_and_not_found,
    test_start_and_stop,
    test_two_gateways_cannot_listen_on_one_port,
)

from helpers import Api, running_api
from postgresql import PostgresServer


@pytest.fixture
def api(tmp_path: Path, postgres: PostgresServer) -> Iterator[Api]:
    with running_api(tmp_path / "data", postgres.new_database()) as running:
        assert running.store.dialect == "postgresql"
        yield running
