"""Domain errors of the decision core."""

from __future__ import annotations


class RequestInvalid(ValueError):
    """A pod's device request cannot be honoured as written (bad quantity, bad annotation)."""

    def __init__(self, where: str, field: str, why: str) -> None:
        self.where = where
        self.field = field
        self.why = why
        super().__init__(f"{where}: {field}: {why}")
