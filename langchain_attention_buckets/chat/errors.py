"""The error of a bad input that knows which field it is about.

``OptionError`` is a ValueError whose ``param`` names the field as an OpenAI client writes it
(``tools[0].function.name``, ``response_format.json_schema.schema``, ``stop``), so that the
chat model and the server name the same field with the same words.
"""

from __future__ import annotations


class OptionError(ValueError):
    """A ValueError about one input field; ``param`` is its path (``tools[0].function.name``)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def shown(value, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (an error names the value, not a whole document)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def kind(value) -> str:
    """The JSON type of ``value`` in words ("a string", "an object", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"
