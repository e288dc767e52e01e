"""Errors the command line turns into one line and exit status 2 (bad input, nothing run)."""

from __future__ import annotations


class ConfigError(Exception):
    """Bad input: a malformed file, unknown key, wrong type or value, or a bad override.

    :param message: what is wrong.
    :param key: dotted path of the offending key, prefixed by enclosing sections as it bubbles up.
    :param file: the experiment file it came from, filled in by the loader.
    :param choices: the valid choices, listed in the message.
    """

    def __init__(
        self,
        message: str,
        key: str | None = None,
        file: str | None = None,
        choices: list[str] | None = None,
    ):
        super().__init__(message)
        self.message, self.key, self.file, self.choices = message, key, file, choices

    def within(self, prefix: str) -> ConfigError:
        """The same error with its key nested under ``prefix`` (``arms.adam.q`` + ``lr``)."""
        self.key = prefix if not self.key else f"{prefix}.{self.key}"
        return self

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.key) if part)
        text = f"{where}: {self.message}" if where else self.message
        if self.choices:
            text += f" (valid: {', '.join(map(str, self.choices))})"
        return text.replace("\n", " ")


class ResultsError(Exception):
    """The results directory cannot be used (unwritable, full disk, corrupt index)."""
