"""Values checked against the type hints of the constructor they are for, before it is called.

A value of the wrong type (``trainer.max_epochs=abc``, ``data.amplitude=[1]``) would otherwise reach
the constructor and fail somewhere inside it with a traceback. The hints say what the constructor takes,
so every ``_target_`` of the configuration gets the same check without a list of keys to maintain.
Hints this module cannot judge (classes, containers, callables) accept anything.
"""

import importlib
import inspect
import types
import typing
from collections.abc import Mapping
from typing import Any

from seqexp.errors import ConfigError, is_int

_UNKNOWN = None  # a hint this module cannot judge


def matches(value: Any, hint: Any) -> bool | None:
    """True or False when ``hint`` can be judged, None when it cannot (anything is then accepted)."""
    if hint is inspect.Parameter.empty or hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return is_int(value)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return any(value == choice and type(value) is type(choice) for choice in typing.get_args(hint))
    if origin is typing.Union or origin is types.UnionType:
        verdicts = [matches(value, arm) for arm in typing.get_args(hint)]
        if any(verdicts):
            return True
        return False if all(v is False for v in verdicts) else _UNKNOWN
    return _UNKNOWN


def describe(hint: Any) -> str:
    """What a hint allows, in words: ``an integer, or null``."""
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if hint is type(None):
        return "null"
    if hint in names:
        return names[hint]
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    if origin is typing.Union or origin is types.UnionType:
        arms = typing.get_args(hint)
        choices = [
            str(c) for arm in arms if typing.get_origin(arm) is typing.Literal for c in typing.get_args(arm)
        ]
        words = [describe(arm) for arm in arms if typing.get_origin(arm) is not typing.Literal]
        if choices:
            words.insert(0, "one of " + ", ".join(dict.fromkeys(choices)))
        return ", or ".join(dict.fromkeys(word for word in words if word))
    return ""


def constructor_hints(target: str) -> dict[str, Any]:
    """The type hints of the parameters of ``target`` (an import path), {} when they cannot be read."""
    module_name, _, name = target.rpartition(".")
    try:
        callable_ = getattr(importlib.import_module(module_name), name)
        signature = inspect.signature(callable_, eval_str=True)
    except Exception:  # an unimportable target is reported by instantiate itself, with its name
        return {}
    return {key: p.annotation for key, p in signature.parameters.items()}


def check_arguments(key: str, node: Mapping[str, Any], target: str | None = None) -> None:
    """Raise ConfigError for the first value of ``node`` (found at ``key``) that the type hints of
    ``target`` (default: the node's ``_target_``) refuse."""
    hints = constructor_hints(target or node["_target_"])
    for name, value in node.items():
        if name.startswith("_") or name not in hints:
            continue
        if matches(value, hints[name]) is False:
            allowed = describe(hints[name])
            raise ConfigError(f"{key}.{name}={value!r} is invalid: it must be {allowed}")
