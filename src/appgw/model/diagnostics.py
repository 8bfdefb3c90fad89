"""Problems found in a gateway document, each naming the resource, the field and a stable code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    resource_id: str
    field: str  # JSON path below the resource, e.g. "properties.hostNames[2]"
    text: str  # what is wrong and, where useful, how to fix it

    @property
    def message(self) -> str:
        where = f"property '{self.field}' of " if self.field else ""
        return f"{self.text} ({where}resource '{self.resource_id}')"

    def to_json(self) -> dict[str, str]:
        target = f"{self.resource_id}#{self.field}" if self.field else self.resource_id
        return {"code": self.code, "message": self.message, "target": target}


class ValidationFailed(Exception):
    """The document was refused; `diagnostics` says why, never empty."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        assert diagnostics, "a refusal must say why"
        super().__init__(diagnostics[0].message)
        self.diagnostics = diagnostics
