"""Errors that are the user's to fix: the CLI prints them in one line, without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a missing file, a wrong field, an unknown name. The message says which.

    A library function that refuses one of its own parameters names it (`param`, and the `value`
    given where that helps), in its own terms; a command line maps it to the flag the user typed
    (`as_flag`: holdout -> --holdout)."""

    def __init__(self, message: str, param: str | None = None, value: object = None):
        self.message = message
        self.param = param
        self.value = value
        super().__init__(self._with(param) if param else message)

    def _with(self, name: str) -> str:
        return f"{name}{'' if self.value is None else f' {self.value}'}: {self.message}"

    def as_flag(self) -> str:
        return self._with(f"--{self.param.replace('_', '-')}") if self.param else str(self)
