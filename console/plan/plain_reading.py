"""A part of a plan as written, read without pydantic when it is plainly valid.

Importing pydantic and building the loader's models from model.py's dataclasses takes longer than the rest of
reading a plan, and `brahma run` waits for it before its controller starts. Most plans are valid, and for those
this reading, which follows the dataclasses' annotations as the loader's strict models do, gives the same part of
the plan. It vouches only for what is plainly right: anything else (a problem, a value pydantic might read
differently, a union more than one member of which fits, an annotation it does not know) is Unsure, and the loader's
models judge it, saying what is wrong as ever."""

from __future__ import annotations

import functools
import types
from dataclasses import MISSING, fields, is_dataclass
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from console.plan.model import Bounds, Parsed

Written = TypeVar("Written")


class Unsure(Exception):
    """This reading cannot vouch for the data: the loader's models judge it."""


def read_plainly(written: type[Written], data: Any) -> Written:
    """`data` as model.py's dataclass `written`, as the loader's strict models would give it, or Unsure."""
    return _part(written, data)


@functools.cache
def _hints(written: type) -> dict[str, Any]:
    return get_type_hints(written, include_extras=True)


def _part(written: type, data: Any) -> Any:
    if type(data) is not dict:
        raise Unsure
    hints = _hints(written)
    known = {part.name: part for part in fields(written)}
    if any(type(name) is not str or name not in known for name in data):
        raise Unsure  # an unknown field
    values = {}
    for name, part in known.items():
        if name in data:
            values[name] = _value(hints[name], data[name])
        elif part.default is MISSING and part.default_factory is MISSING:
            raise Unsure  # a required field left out
    try:
        return written(**values)  # its __post_init__ check, as the models run it
    except Exception:
        raise Unsure from None


def _value(annotation: Any, value: Any) -> Any:
    if isinstance(annotation, type) and is_dataclass(annotation):
        return _part(annotation, value)
    origin, arguments = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _annotated(arguments[0], annotation.__metadata__, value)
    if origin in (Union, types.UnionType):
        return _one_of(arguments, value)
    if origin is Literal:
        for allowed in arguments:
            if type(value) is type(allowed) and value == allowed:
                return allowed
        raise Unsure
    if origin is list and type(value) is list:
        return [_value(arguments[0], item) for item in value]
    if origin is dict and type(value) is dict:
        return {_value(arguments[0], key): _value(arguments[1], item) for key, item in value.items()}
    if annotation in (str, int, bool) and type(value) is annotation:
        return value
    if annotation is float and type(value) in (float, int):
        return float(value)  # strict, pydantic takes an int for a float, as a float
    if annotation is type(None) and value is None:
        return None
    raise Unsure


def _one_of(members: tuple[Any, ...], value: Any) -> Any:
    """The value as the one member of a union it fits; fitting several, pydantic's choice is its own to make."""
    fits = []
    for member in members:
        try:
            fits.append(_value(member, value))
        except Unsure:
            continue
    if len(fits) != 1:
        raise Unsure
    return fits[0]


def _annotated(base: Any, metadata: tuple[Any, ...], value: Any) -> Any:
    """A field written in a form of its own is parsed first; a number's bounds are checked once it is one."""
    parsers = [item for item in metadata if isinstance(item, Parsed)]
    bounds = [item for item in metadata if isinstance(item, Bounds)]
    if len(parsers) > 1 or len(parsers) + len(bounds) != len(metadata):
        raise Unsure
    if parsers:
        try:
            value = parsers[0].parse(value)
        except Exception:
            raise Unsure from None
    value = _value(base, value)
    for limit in bounds:
        within = (
            (limit.ge is None or value >= limit.ge)
            and (limit.gt is None or value > limit.gt)
            and (limit.le is None or value <= limit.le)
            and (limit.lt is None or value < limit.lt)
        )
        if not within:
            raise Unsure
    return value
