"""A browser without JavaScript for the portal's integration tests: it reads each form of a
page as a browser would submit it, posts it with some fields changed, and finds what the page
says next to a field."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx

from helpers import TOKEN, Api, gateway_url, running_api


class FormReader(HTMLParser):
    """What a browser would submit for each form of a page, keyed by the form's action."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: dict[str, list[tuple[str, str]]] = {}
        self._fields: list[tuple[str, str]] | None = None
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        if tag == "form":
            self._fields = self.forms.setdefault(a.get("action", ""), [])
        elif self._fields is None or ("name" not in a and tag != "option"):
            return
        elif tag == "input":
            kind = a.get("type", "text")
            if kind in ("radio", "checkbox"):
                if "checked" in a:
                    self._fields.append((a["name"], a.get("value", "on")))
            elif kind not in ("submit", "button", "file"):
                self._fields.append((a["name"], a.get("value", "")))
        elif tag == "select":
            self._select, self._options = a["name"], []
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value", ""), "selected" in a))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._fields = None
        elif tag == "select" and self._select is not None and self._fields is not None:
            chosen = [value for value, selected in self._options if selected]
            if self._options:
                self._fields.append((self._select, (chosen or [self._options[0][0]])[0]))
            self._select = None


class Browser:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def get(self, url: str) -> str:
        response = self.client.get(url)
        assert response.status_code == 200, response.text
        return response.text

    def submit(
        self,
        page: str,
        action: str,
        files: dict[str, tuple[str, bytes]] | None = None,
        unticked: tuple[str, ...] = (),
        **changes: str | list[str],
    ) -> httpx.Response:
        """Post the form `action` of `page` as shown, with `changes` typed, the checkboxes
        `unticked` cleared and `files` chosen (field -> (file name, content))."""
        reader = FormReader()
        reader.feed(page)
        assert action in reader.forms, f"no form posting to {action}: {list(reader.forms)}"
        data: dict[str, list[str]] = {}
        for name, shown in reader.forms[action]:
            if name not in unticked:
                data.setdefault(name, []).append(shown)
        for name, value in changes.items():
            data[name] = value if isinstance(value, list) else [value]
        return self.client.post(action, data=data, files=files)


def field_error(page: str, name: str) -> str:
    pattern = rf'<ul class="field-error" id="{re.escape(name)}-error"[^>]*>(.*?)</ul>'
    match = re.search(pattern, page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", match[1])) if match else ""


def general_error(page: str) -> str:
    match = re.search(r'<div class="form-error" role="alert">(.*?)</div>', page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", match[1])) if match else ""


def value_of(page: str, name: str) -> str | None:
    match = re.search(rf'<input[^>]* name="{re.escape(name)}"[^>]*>', page)
    if match is None:
        return None
    value = re.search(r'value="([^"]*)"', match[0])
    return html.unescape(value[1]) if value else ""


def is_checked(page: str, name: str, value: str = "on") -> bool:
    match = re.search(
        rf'<input[^>]*name="{re.escape(name)}" value="{re.escape(value)}"[^>]*>', page
    )
    return match is not None and "checked" in match[0]


def selected(page: str, name: str) -> str:
    match = re.search(
        rf'<select id="{re.escape(name)}" name="{re.escape(name)}".*?</select>', page, re.S
    )
    assert match, f"no select {name}"
    chosen = re.search(r'<option value="([^"]*)" selected', match[0])
    return chosen[1] if chosen else ""


def error_only_at(page: str, name: str, words: str) -> None:
    """`words` are shown under the field `name`, and nothing is left for the top of the form."""
    assert words in field_error(page, name), f"'{words}' not under {name}: {general_error(page)}"
    assert general_error(page) == "", f"unplaced errors: {general_error(page)}"


@contextmanager
def signed_in_portal(data_dir: Path, document: dict[str, Any]) -> Iterator[tuple[Api, Browser]]:
    """An API serving the portal, with `document` PUT as gateway "appgw", and a signed-in
    browser."""
    with running_api(data_dir) as api:
        created = api.client.put(gateway_url(), json=document)
        assert created.status_code in (200, 201), created.text
        with httpx.Client(base_url=api.base_url, timeout=30, follow_redirects=False) as client:
            signed = client.post("/portal/signin", data={"token": TOKEN})
            assert signed.status_code == 303, signed.text
            yield api, Browser(client)


def stored(api: Api, name: str = "appgw") -> dict[str, Any]:
    """The gateway as the API returns it now."""
    response = api.client.get(gateway_url(name))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]
