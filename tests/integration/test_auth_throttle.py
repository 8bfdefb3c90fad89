"""Guessing tokens against a real `appgw serve`: refused authentication is limited per client
address (API: 429 + Retry-After; portal sign-in: its error page, 429), callers from other
addresses are never held up, and the refusals reach the activity log, one entry per address and
minute, without the tokens presented.

Clients take their own source address on the loopback network (127.0.0.x) to be different
callers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers import API_VERSION, TOKEN, ServeProcess, serving

pytestmark = pytest.mark.slow

LIST = (
    f"/subscriptions/sub1/providers/Microsoft.Network/applicationGateways?api-version={API_VERSION}"
)
ACTIVITY = (
    "/subscriptions/sub1/providers/Microsoft.Insights/eventtypes/management/values"
    f"?api-version={API_VERSION}&$filter=resourceUri eq '/'"
)
REFUSED = "appgw/authenticate/action"
BURST = 10  # refusals an address gets before it is limited (appgw.control.throttle)
REFILL = 6.0  # seconds until one more attempt is allowed


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    data_dir = tmp_path_factory.mktemp("throttle") / "data"
    with serving(data_dir, {"APPGW_ADMIN_TOKEN": TOKEN}, wait_ready=False) as running:
        yield running


def client(server: ServeProcess, address: str) -> httpx.Client:
    """A client whose requests come from `address` (on the loopback network)."""
    return httpx.Client(
        base_url=server.base_url,
        transport=httpx.HTTPTransport(local_address=address),
        timeout=30,
    )


def wrong(index: int) -> str:
    return f"appgw_wrong-{index:04d}-guess-{'x' * 24}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refusals(server: ServeProcess) -> dict[str, dict[str, object]]:
    """Source address -> the detail of its refused-authentication entries, added up."""
    with client(server, "127.0.0.1") as api:
        answer = api.get(ACTIVITY, headers=bearer(TOKEN))
    assert answer.status_code == 200, answer.text
    found: dict[str, dict[str, object]] = {}
    for event in answer.json()["value"]:
        if event["operationName"]["value"] == REFUSED:
            address = event["httpRequest"]["clientIpAddress"]
            assert address not in found, "one entry per address and minute"
            found[address] = event["properties"]["detail"]
    return found


def test_bad_tokens_are_limited_per_address(server: ServeProcess) -> None:
    started = time.monotonic()
    with client(server, "127.0.0.2") as attacker:
        answers = [attacker.get(LIST, headers=bearer(wrong(n))) for n in range(300)]
        statuses = [answer.status_code for answer in answers]
        assert statuses[:BURST] == [401] * BURST, statuses[: BURST + 2]
        assert set(statuses[BURST:]) == {429}, statuses
        throttled = answers[-1]
        assert throttled.json()["error"]["code"] == "TooManyRequests"
        assert 1 <= int(throttled.headers["Retry-After"]) <= REFILL
        # A limited address gets no token checked, the right one included: otherwise the
        # answer to a right guess would still tell it apart (see README).
        assert attacker.get(LIST, headers=bearer(TOKEN)).status_code == 429
    # Everyone else: not held up, each address with its own allowance.
    with client(server, "127.0.0.3") as operator:
        assert operator.get(LIST, headers=bearer(TOKEN)).status_code == 200
        assert operator.get(LIST, headers=bearer(wrong(0))).status_code == 401
        assert operator.get(LIST, headers=bearer(TOKEN)).status_code == 200
    assert time.monotonic() - started < 30
    # Once Retry-After has passed, one more attempt is allowed, then it is limited again.
    time.sleep(REFILL + 0.5)
    with client(server, "127.0.0.2") as attacker:
        assert attacker.get(LIST, headers=bearer(wrong(1000))).status_code == 401
        assert attacker.get(LIST, headers=bearer(wrong(1001))).status_code == 429
    logged = refusals(server)
    assert logged["127.0.0.2"]["refused"] == 303, logged
    assert logged["127.0.0.2"]["limited"] == 292, logged  # 290 + the right token + 1
    assert logged["127.0.0.3"]["refused"] == 1, logged


def test_a_stale_token_sent_again_and_again_does_not_lock_out_its_address(
    server: ServeProcess,
) -> None:
    """A script with an old token retries the same one: that is no guessing, and the operator
    at the same address must not be locked out by it."""
    with client(server, "127.0.0.4") as same_host:
        statuses = {same_host.get(LIST, headers=bearer(wrong(7))).status_code for _ in range(60)}
        assert statuses == {401}
        assert same_host.get(LIST, headers=bearer(TOKEN)).status_code == 200
    assert refusals(server)["127.0.0.4"]["refused"] == 60


def test_portal_sign_in_guesses_are_limited_too(server: ServeProcess) -> None:
    with client(server, "127.0.0.5") as browser:
        pages = [browser.post("/portal/signin", data={"token": wrong(n)}) for n in range(200)]
        statuses = [page.status_code for page in pages]
        assert statuses[:BURST] == [401] * BURST, statuses[: BURST + 2]
        assert set(statuses[BURST:]) == {429}, statuses
        assert "text/html" in pages[-1].headers["content-type"]
        assert "Too many" in pages[-1].text and pages[-1].headers["Retry-After"]
        # Limited on the API as well: one allowance per address, whichever door it knocks on.
        assert browser.get(LIST, headers=bearer(wrong(1))).status_code == 429
    with client(server, "127.0.0.6") as other:
        signed_in = other.post("/portal/signin", data={"token": TOKEN})
        assert signed_in.status_code == 303, signed_in.text
    logged = refusals(server)["127.0.0.5"]
    assert logged["refused"] == 201 and logged["via"] == ["api", "portal"], logged


def test_the_tokens_presented_are_never_stored(server: ServeProcess, tmp_path: Path) -> None:
    refusals(server)  # written out
    data_dir = Path(server.banner.split("data directory: ")[1].split()[0])
    for path in data_dir.glob("appgw.db*"):
        assert b"appgw_wrong-" not in path.read_bytes(), path
        assert b"guess-xxxx" not in path.read_bytes(), path
