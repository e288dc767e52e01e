"""Plain data to typed values: the YAML loader and ``from_dict`` (dict -> dataclass).

The one place that decodes experiment files, claims and run records into dataclasses; it
imports nothing of the project but its error type, so every other module may use it.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from suite.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``3e-4`` as a float.

    YAML 1.1 (PyYAML) requires a dot in floats, so ``3e-4`` would arrive as the string '3e-4'
    (the rl-baselines3-zoo pitfall); this resolver is the usual fix.

    Keys of a mapping must be distinct: PyYAML keeps the last of two equal keys without a word
    (two ``adam:`` arms would silently become one), so a second one is a ConfigError naming the
    key and both lines.
    """

    def construct_mapping(self, node, deep=False):
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # keys merged in with `<<` may be overridden: that is what it is for
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                earlier = first_line.get(key)
                first_line.setdefault(key, line)
            except TypeError:
                continue  # an unhashable key: SafeLoader's own error names it
            if earlier is not None:
                raise ConfigError(
                    f"duplicate key {key!r} (first at line {earlier}): the second would "
                    "silently replace the first",
                    key=f"line {line}",
                )
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


# Experiment files are small. Anchors and aliases are allowed (sharing a spec between arms), but
# not a structure that refers to itself or expands to millions of values (a "billion laughs"),
# which would hang or crash everything that walks it (hashing the run, JSON, dataclasses).
MAX_YAML_VALUES = 100_000
MAX_YAML_DEPTH = 50


def _check_shape(data: Any) -> None:
    budget = MAX_YAML_VALUES
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise ConfigError(
                f"malformed YAML: expands to more than {MAX_YAML_VALUES} values (an alias bomb?)"
            )
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(
                f"malformed YAML: nested deeper than {MAX_YAML_DEPTH} levels"
                " (an alias that refers to itself?)"
            )
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in (*value.keys(), *value.values()))
        elif isinstance(value, (list, tuple, set)):
            stack.extend((v, depth + 1) for v in value)


def parse_yaml(text: str, file: str | None = None) -> Any:
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"malformed YAML: {problem}", key=where, file=file) from None
    except RecursionError:
        raise ConfigError("malformed YAML: nested too deeply", file=file) from None
    except ConfigError as error:  # a duplicate key (_Loader.construct_mapping)
        error.file = file
        raise
    try:
        _check_shape(data)
    except ConfigError as error:
        error.file = file
        raise
    return data


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read: {error}", file=str(path)) from None
    return parse_yaml(text, file=str(path))


# --- typed dataclasses from plain dicts -----------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against a type hint; convert only int -> float and list -> tuple."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(value, option, key)
            except ConfigError as error:
                errors.append(error)
        raise errors[0]
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"invalid value {value!r}", key=key, choices=list(args))
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected a list, got {value!r}", key=key)
        item = args[0] if args else Any
        items = [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin or tp) is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {value!r}", key=key)
        value_type = args[1] if args else Any
        return {str(k): coerce(v, value_type, f"{key}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"expected a number, got {value!r}", key=key)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"expected an integer, got {value!r}", key=key)
        return value
    if tp in (str, bool):
        if not isinstance(value, tp):
            raise ConfigError(f"expected {_type_name(tp)}, got {value!r}", key=key)
        return value
    raise TypeError(f"unsupported config type {tp!r} at {key}")


def from_dict(cls: type, data: Any, key: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {data!r}", key=key or None)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{key}." if key else ""
    for name in data:
        if name not in fields:
            raise ConfigError(f"unknown key {name!r}", key=f"{prefix}{name}", choices=list(fields))
    values = {}
    for name, f in fields.items():
        if name in data:
            values[name] = coerce(data[name], hints[name], f"{prefix}{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {name!r}", key=key or None)
    try:
        obj = cls(**values)
    except (ValueError, TypeError) as error:
        raise ConfigError(str(error), key=key or None) from None
    check = getattr(obj, "validate", None)
    if check is not None:
        try:
            check()
        except ValueError as error:
            raise ConfigError(str(error), key=key or None) from None
    return obj
