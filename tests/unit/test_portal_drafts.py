"""The portal's drafts of uploaded files (portal.drafts): kept per session and form, bounded in
bytes and age, with the password that opens a PFX kept alongside it."""

from __future__ import annotations

import io

from starlette.datastructures import FormData, Headers, UploadFile

from appgw.portal import drafts
from appgw.portal.drafts import DraftStore, password_field

FORM = "/portal/create"


def upload(name: str, data: bytes) -> UploadFile:
    return UploadFile(
        io.BytesIO(data),
        filename=name,
        headers=Headers({"content-type": "application/x-pkcs12"}),
    )


def no_file() -> UploadFile:
    """What a browser posts for a file input left empty."""
    return UploadFile(io.BytesIO(b""), filename="")


def read(form: FormData, name: str) -> bytes | None:
    value = form.get(name)
    if not isinstance(value, UploadFile):
        return None
    value.file.seek(0)
    return value.file.read()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_password_fields_go_with_file_fields() -> None:
    assert password_field("cert_file") == "cert_password"
    assert password_field("backend_cer") is None
    assert password_field("file") is None


def test_a_file_and_its_password_come_back_when_not_chosen_again() -> None:
    store = DraftStore()
    first = store.keep(
        "owner",
        FORM,
        FormData([("cert_file", upload("a.pfx", b"PFX")), ("cert_password", "secret")]),
    )
    assert read(first, "cert_file") == b"PFX" and first["cert_password"] == "secret"
    kept = store.kept("owner", FORM)["cert_file"]
    assert (kept.filename, kept.size, kept.password_kept) == ("a.pfx", 3, True)

    again = store.keep("owner", FORM, FormData([("cert_file", no_file()), ("cert_password", "")]))
    assert read(again, "cert_file") == b"PFX" and again["cert_password"] == "secret"
    # A step that shows neither field still gets both.
    step = store.keep("owner", FORM, FormData([("gateway_name", "gw")]))
    assert read(step, "cert_file") == b"PFX" and step["cert_password"] == "secret"
    # A password typed again replaces the kept one; a new file replaces the file.
    store.keep("owner", FORM, FormData([("cert_file", no_file()), ("cert_password", "better")]))
    replaced = store.keep("owner", FORM, FormData([("cert_file", upload("b.pfx", b"NEW"))]))
    assert read(replaced, "cert_file") == b"NEW"
    assert "cert_password" not in replaced  # the new file came without one
    assert store.kept("owner", FORM)["cert_file"].filename == "b.pfx"


def test_drafts_belong_to_one_session_and_one_form() -> None:
    store = DraftStore()
    store.keep("owner", FORM, FormData([("backend_cer", upload("root.cer", b"CER"))]))
    assert store.kept("someone else", FORM) == {}
    assert store.kept("owner", "/portal/other/form") == {}
    other = store.keep("someone else", FORM, FormData([("backend_cer", no_file())]))
    assert read(other, "backend_cer") is None  # not the other session's file
    store.forget("owner", FORM)
    assert store.kept("owner", FORM) == {}


def test_drafts_are_bounded_in_bytes_and_in_age() -> None:
    clock = Clock()
    store = DraftStore(clock)
    megabyte = b"x" * (1024 * 1024)
    for index in range(drafts.MAX_DRAFT_BYTES // len(megabyte) + 3):
        store.keep(f"session{index}", FORM, FormData([("cert_file", upload("a.pfx", megabyte))]))
        clock.now += 1
    # The oldest went first; the newest are all there.
    assert store.kept("session0", FORM) == {}
    assert store.kept("session2", FORM) == {}
    newest = drafts.MAX_DRAFT_BYTES // len(megabyte) + 2
    assert store.kept(f"session{newest}", FORM)
    assert store._bytes <= drafts.MAX_DRAFT_BYTES
    clock.now += drafts.DRAFT_LIFETIME + 1
    assert store.kept(f"session{newest}", FORM) == {}
    assert store._bytes == 0
