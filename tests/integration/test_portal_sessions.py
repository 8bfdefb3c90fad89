"""Portal sessions live in the store (issue 14, item 15): a restart of `appgw serve` keeps
everyone signed in, the store holds only a hash of the cookie, and sign-out and the idle
timeout end a session for good."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from appgw.control import sessions
from appgw.store.secrets import MasterKey
from appgw.store.sql import SqlStore, utcnow
from helpers import TOKEN, start_serve

pytestmark = pytest.mark.slow

COOKIE = "appgw_session"
RESOURCES = "/portal/resources"


def sign_in(base_url: str) -> str:
    with httpx.Client(base_url=base_url, timeout=30) as portal:
        answer = portal.post("/portal/signin", data={"token": TOKEN})
        assert answer.status_code == 303, answer.text
        return answer.cookies[COOKIE]


def page(base_url: str, cookie: str) -> httpx.Response:
    with httpx.Client(base_url=base_url, timeout=30, cookies={COOKIE: cookie}) as portal:
        return portal.get(RESOURCES)


def test_a_restart_keeps_the_operator_signed_in_and_sign_out_ends_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"APPGW_ADMIN_TOKEN": TOKEN}
    first = start_serve(data, env, wait_ready=False)
    try:
        cookie = sign_in(first.base_url)
        assert page(first.base_url, cookie).status_code == 200
    finally:
        first.stop()
    assert cookie.encode() not in (data / "appgw.db").read_bytes()  # only its hash is kept

    second = start_serve(data, env, wait_ready=False)
    try:
        kept = page(second.base_url, cookie)
        assert kept.status_code == 200, kept.text
        assert "Sign in" not in kept.text or "Sign out" in kept.text
        with httpx.Client(base_url=second.base_url, timeout=30, cookies={COOKIE: cookie}) as c:
            form = c.get(RESOURCES).text
            csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            assert c.post("/portal/signout", data={"csrf": csrf}).status_code == 303
        ended = page(second.base_url, cookie)
        assert ended.status_code == 303 and "/portal/signin" in ended.headers["location"]
    finally:
        second.stop()


def test_an_idle_or_old_session_ends(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'appgw.db'}", MasterKey.load_or_create(tmp_path))
    try:
        idle, old = sessions.start(store, "admin"), sessions.start(store, "admin")
        now = utcnow()
        assert sessions.caller(store, idle, now) == "admin"
        assert sessions.caller(store, idle, now + sessions.IDLE_TIMEOUT + timedelta(1)) is None
        assert sessions.caller(store, idle, now) is None  # ended, not just refused once
        # Active all along (seen every 30 min), still ended after a working day.
        steps = int(sessions.ABSOLUTE_TIMEOUT / timedelta(minutes=30))
        for step in range(1, steps):
            assert sessions.caller(store, old, now + timedelta(minutes=30 * step)) == "admin"
        late = now + sessions.ABSOLUTE_TIMEOUT + timedelta(minutes=1)
        assert sessions.caller(store, old, late) is None
        assert sessions.caller(store, "never-issued") is None
    finally:
        store.close()
