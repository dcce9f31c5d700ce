"""Errors that are the user's to fix: the CLI prints them in one line, without a traceback."""


class UserError(Exception):
    """Bad input: a missing file, a wrong field, an unknown name. The message says which."""
