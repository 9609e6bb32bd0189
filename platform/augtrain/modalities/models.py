"""Model builders: checking a builder's parameters from YAML, and building it for a dataset.

Each modality offers its own builders (`modalities/<kind>/models.py`); these helpers work on any.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Callable

from pydantic import TypeAdapter, ValidationError


def _parameter_hints(builder: Callable) -> dict[str, Any]:
    """The builder's parameter annotations, evaluated; its return annotation (torch's nn.Module, imported only
    for type checkers) is left as text, so that checking a spec imports no torch."""
    parameters = {name: hint for name, hint in builder.__annotations__.items() if name != "return"}
    return typing.get_type_hints(types.SimpleNamespace(__annotations__=parameters), globalns=builder.__globals__,
                                 include_extras=True)


def check_builder(name: str, builder: Callable, params: dict[str, Any]) -> None:
    """Raise ValueError if `params` are not among the builder's arguments, or of the wrong type."""
    hints = _parameter_hints(builder)
    accepted = set(inspect.signature(builder).parameters) - {"shape", "classes"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ValueError(f"model {name!r} has no parameter(s) {unknown} (accepts: {', '.join(sorted(accepted))})")
    for key, value in params.items():
        hint = hints[key]
        base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
        wanted = (f"one of {', '.join(map(repr, typing.get_args(base)))}" if typing.get_origin(base) is typing.Literal
                  else base.__name__)
        try:
            TypeAdapter(hint).validate_python(value, strict=True)
        except ValidationError as exc:
            raise ValueError(
                f"model {name!r}: {key} must be {wanted}, got {str(value)[:80]!r} ({exc.errors()[0]['msg']})"
            ) from None
