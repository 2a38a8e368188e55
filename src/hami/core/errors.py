"""Domain errors of the decision core."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration, inventory or manifest file cannot be used; the message names the file
    and the key. The one such error of every command (`hami.config` and the device plugin)."""


class RequestInvalid(ValueError):
    """A pod's device request cannot be honoured as written (bad quantity, bad annotation)."""

    def __init__(self, where: str, field: str, why: str) -> None:
        self.where = where
        self.field = field
        self.why = why
        super().__init__(f"{where}: {field}: {why}")
