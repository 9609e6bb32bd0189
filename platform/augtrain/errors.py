"""What every layer raises at input it refuses, and the command line catches without importing the layers."""

from __future__ import annotations


class BadInput(ValueError):
    """Input augtrain refuses: the command line prints the message as one clear error and exits 2."""


def clip(exc: BaseException | str, limit: int = 160) -> str:
    """An error's text cut to `limit` characters: hostile input can make it any length."""
    text = str(exc)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def refuse_constant(name: str):
    """json.loads's parse_constant: NaN and Infinity, which Python's json reads, are no JSON numbers."""
    raise ValueError(f"{name} is not a JSON number")
