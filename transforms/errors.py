"""Errors a user can fix. The CLI prints them as one line, never as a stack trace."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in input, options or configuration that the user can fix.

    The message must say what is wrong and how to fix it; for a config mistake it names the
    file and the key.
    """


class ConfigError(UserError):
    """A configuration file is invalid. Names the file, the key and the fix."""

    def __init__(self, path: object, key: str, problem: str, fix: str) -> None:
        self.path = str(path)
        self.key = key
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.path}: key '{key}': {problem}. Fix: {fix}")
