"""User-facing errors. Every error names the field, the valid choices and the closest match."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class EvalkitError(Exception):
    """An error caused by user input or environment; the CLI prints it and exits with status 2."""


def closest(value: object, choices: Iterable[object]) -> str | None:
    """The choice most similar to ``value`` (difflib ratio >= 0.5), or None."""
    names = [str(c) for c in choices]
    hits = difflib.get_close_matches(str(value), names, n=1, cutoff=0.5)
    return hits[0] if hits else None


class ChoiceError(EvalkitError, ValueError):
    """``field`` got ``value`` which is not one of ``choices``."""

    def __init__(self, field: str, value: object, choices: Iterable[object], what: str = "value") -> None:
        self.field, self.value = field, value
        self.choices = sorted({str(c) for c in choices})
        guess = closest(value, self.choices)
        hint = f" Did you mean {guess!r}?" if guess else ""
        super().__init__(
            f"{field}: unknown {what} {value!r}. Valid choices: {', '.join(self.choices)}.{hint}"
        )


class FieldError(EvalkitError, ValueError):
    """``field`` has a value of the right name but a wrong type or range."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")
