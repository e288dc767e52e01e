"""Errors the command line turns into one line and exit status 2 (bad input, nothing run)."""

from __future__ import annotations

import difflib
import re

# The first quoted name in a message ("unknown optimizer 'adamm'") is what a user typed.
_QUOTED = re.compile(r"'([^']+)'")


class ConfigError(Exception):
    """Bad input: a malformed file, unknown key, wrong type or value, or a bad override.

    :param message: what is wrong.
    :param key: dotted path of the offending key, prefixed by enclosing sections as it bubbles up.
    :param file: the experiment file it came from, filled in by the loader.
    :param choices: the valid choices, listed in the message.
    :param value: what was given, for a "did you mean" among ``choices`` (default: the first
        quoted name in ``message``).
    """

    def __init__(
        self,
        message: str,
        key: str | None = None,
        file: str | None = None,
        choices: list[str] | None = None,
        value: str | None = None,
    ):
        super().__init__(message)
        self.message, self.key, self.file, self.choices = message, key, file, choices
        self.value = value

    def within(self, prefix: str) -> ConfigError:
        """The same error with its key nested under ``prefix`` (``arms.adam.q`` + ``lr``)."""
        self.key = prefix if not self.key else f"{prefix}.{self.key}"
        return self

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.key) if part)
        text = f"{where}: {self.message}" if where else self.message
        if self.choices:
            guess = did_you_mean(self._given(), [str(c) for c in self.choices])
            if guess:
                text += f"; did you mean {guess!r}?"
            text += f" (valid: {', '.join(map(str, self.choices))})"
        return text.replace("\n", " ")

    def _given(self) -> str | None:
        if self.value is not None:
            return str(self.value)
        found = _QUOTED.search(self.message)
        return found.group(1) if found else None


def did_you_mean(given: str | None, choices: list[str]) -> str | None:
    """The choice closest to ``given`` (case-insensitive; difflib's ratio >= 0.6), or None."""
    if not given or given in choices:
        return None
    lowered = {c.lower(): c for c in choices}
    if given.lower() in lowered:
        return lowered[given.lower()]
    close = difflib.get_close_matches(given.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


class ResultsError(Exception):
    """The results directory cannot be used (unwritable, full disk, corrupt index)."""
