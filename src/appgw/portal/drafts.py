"""Files a form uploaded, kept for the session while the operator fixes the form: a refused
submit (a wrong password, a name taken) or a step of the Create wizard does not make them choose
the PFX and the CER again. A browser cannot refill a file input, so the portal keeps the file.

Drafts live in this process only, never on disk: they hold private keys. A form's drafts go when
it is saved, when its page is opened afresh, at sign-out and after `DRAFT_LIFETIME`. A request
that lands on another instance (or after a restart) finds none and asks for the file again.

A file field `X_file` keeps the password posted with it in `X_password` (a PFX and what opens it
go together); a password typed again replaces the kept one."""

from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import FormData, Headers, UploadFile

# All sessions' drafts together: what the portal may hold in memory for them. A file is at most
# the portal's upload limit (1 MiB), so this is dozens of half-filled forms.
MAX_DRAFT_BYTES = 64 * 1024 * 1024
# A form left alone for an hour is started again (the session's own idle timeout is an hour).
DRAFT_LIFETIME = 3600.0


@dataclass(frozen=True)
class Draft:
    filename: str
    content_type: str
    data: bytes
    password: str | None  # posted with the file in its `X_password` field
    stored_at: float


@dataclass(frozen=True)
class KeptFile:
    """What a page says about a kept file: its name, and whether its password is kept too."""

    filename: str
    size: int
    password_kept: bool


def password_field(file_field: str) -> str | None:
    """The password that goes with `file_field` (`cert_file` -> `cert_password`), if any."""
    stem, separator, _ = file_field.rpartition("_file")
    return f"{stem}_password" if separator and file_field.endswith("_file") else None


class DraftStore:
    """Drafts by (owner, form, field): the owner is a per-session secret (its CSRF token), the
    form the URL it posts to. Oldest first, so the bound drops the stalest."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._drafts: OrderedDict[tuple[str, str, str], Draft] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def keep(self, owner: str, form_url: str, form: FormData) -> FormData:
        """The form the screens read: a file chosen now becomes the field's draft; a field left
        empty gets its draft (and the draft's password, when none was typed)."""
        fields: list[tuple[str, str | UploadFile]] = []
        with self._lock:
            self._expire()
            for name, value in form.multi_items():
                if not isinstance(value, UploadFile):
                    fields.append((name, value))
                elif value.filename:  # an input left empty takes its draft (below)
                    chosen = self._chosen(owner, form_url, name, value, form)
                    if chosen is not None:
                        fields.append((name, _as_upload(chosen)))
            kept = {}
            for (o, f, name), draft in list(self._drafts.items()):
                if (o, f) == (owner, form_url):
                    kept[name] = self._retyped((o, f, name), draft, form)
        chosen_now = {name for name, value in fields if isinstance(value, UploadFile)}
        fields += [(name, _as_upload(d)) for name, d in kept.items() if name not in chosen_now]
        return FormData(_with_passwords(fields, kept))

    def kept(self, owner: str, form_url: str) -> dict[str, KeptFile]:
        with self._lock:
            self._expire()
            return {
                name: KeptFile(draft.filename, len(draft.data), bool(draft.password))
                for (o, f, name), draft in self._drafts.items()
                if (o, f) == (owner, form_url)
            }

    def forget(self, owner: str, form_url: str | None = None) -> None:
        """The drafts of one form of `owner` (saved, or opened afresh), or all of them."""
        with self._lock:
            for key in [k for k in self._drafts if k[0] == owner and form_url in (None, k[1])]:
                self._drop(key)

    # --- internals (under the lock) ---------------------------------------------------------------

    def _chosen(
        self, owner: str, form_url: str, name: str, value: UploadFile, form: FormData
    ) -> Draft | None:
        """The draft of a file chosen now (None when it is empty: the kept one stays)."""
        key = (owner, form_url, name)
        value.file.seek(0)
        data = value.file.read()
        if not data:
            return None
        self._drop(key)
        self._drafts[key] = Draft(
            value.filename or "",
            value.content_type or "application/octet-stream",
            data,
            _typed_password(form, name),
            self._clock(),
        )
        self._bytes += len(data)
        while self._bytes > MAX_DRAFT_BYTES and self._drafts:
            self._drop(next(iter(self._drafts)))
        return self._drafts.get(key)

    def _retyped(self, key: tuple[str, str, str], draft: Draft, form: FormData) -> Draft:
        """`draft`, with the password typed in this post if one was (a fixed typo)."""
        password = _typed_password(form, key[2])
        if password is None or password == draft.password:
            return draft
        draft = Draft(draft.filename, draft.content_type, draft.data, password, self._clock())
        self._drafts[key] = draft
        return draft

    def _expire(self) -> None:
        oldest = self._clock() - DRAFT_LIFETIME
        for key in [k for k, d in self._drafts.items() if d.stored_at < oldest]:
            self._drop(key)

    def _drop(self, key: tuple[str, str, str]) -> None:
        draft = self._drafts.pop(key, None)
        if draft is not None:
            self._bytes -= len(draft.data)


def _typed_password(form: FormData, file_field: str) -> str | None:
    secret_field = password_field(file_field)
    typed = form.get(secret_field) if secret_field else None
    return typed if isinstance(typed, str) and typed else None


def _as_upload(draft: Draft) -> UploadFile:
    return UploadFile(
        io.BytesIO(draft.data),
        size=len(draft.data),
        filename=draft.filename,
        headers=Headers({"content-type": draft.content_type}),
    )


def _with_passwords(
    fields: list[tuple[str, str | UploadFile]], kept: dict[str, Draft]
) -> list[tuple[str, str | UploadFile]]:
    """A password left empty takes the one kept with its file."""
    secrets = {
        secret: draft.password
        for name, draft in kept.items()
        if draft.password and (secret := password_field(name))
    }
    out: list[tuple[str, str | UploadFile]] = []
    for name, value in fields:
        if name in secrets and value == "":
            value = secrets.pop(name)
        elif name in secrets:
            secrets.pop(name)
        out.append((name, value))
    out.extend(secrets.items())  # the step posted did not show the password field
    return out
