"""Field paths (`interaction.content.text`, `profile.tier`, `task.queue`, `now`): checked at load,
compiled to getters, and resolved to `MISSING` rather than raising when any step is absent.

Interaction paths are checked against the contact schema, so `interaction.chanel` is a load error
with a suggestion instead of a rule that silently never fires. The profile and the task are plain
dicts for now, so any key is accepted under them.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from schemas import Interaction

from .errors import SpecError

ROOTS = ("interaction", "profile", "task", "now")


class _Missing:
    """What a path yields when any step is absent or null; only `exists`/`missing` see it as a value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()

Getter = Callable[[Any], Any]  # env -> value or MISSING


def check_field(path: object) -> str:
    """Return the canonical path (aliases resolved, e.g. `call.from` -> `call.from_`) or raise SpecError."""
    if not isinstance(path, str) or not path:
        raise SpecError(f"field must be a dotted path string like interaction.channel, not {path!r}")
    root, *rest = path.split(".")
    if root not in ROOTS:
        hint = _suggest(path, [f"{r}.{'.'.join(rest)}" if rest else r for r in ROOTS])
        raise SpecError(
            f"unknown field {path!r}: fields start with interaction., profile., task. or now{hint}"
        )
    if root == "now":
        if rest:
            raise SpecError("`now` has no sub-fields")
        return path
    if not rest or any(not seg or seg != seg.strip() for seg in rest):
        raise SpecError(f"bad field {path!r}: name a key under {root}., e.g. {root}.{_EXAMPLE[root]}")
    if root == "interaction":
        rest = _check_model_path(Interaction, rest, path)
    return ".".join([root, *rest])


_EXAMPLE = {"interaction": "channel", "profile": "tier", "task": "queue"}


def _check_model_path(model: type[BaseModel], segments: list[str], path: str) -> list[str]:
    """Walk the pydantic schema; map and list steps accept any key or index."""
    out: list[str] = []
    kind: Any = model
    for i, seg in enumerate(segments):
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names = {n: n for n in kind.model_fields}
            names.update({f.alias: n for n, f in kind.model_fields.items() if f.alias})
            if seg not in names:
                prefix = ".".join(["interaction", *out])
                hint = _suggest(seg, list(names), f"{prefix}.")
                raise SpecError(f"unknown field {path!r}: {prefix} has no field {seg!r}{hint}")
            out.append(names[seg])
            kind = _shape(kind.model_fields[names[seg]].annotation)
        elif kind == "map":
            out.append(seg)
            kind = "leaf"
        elif kind == "list":
            if not seg.isdigit():
                where = ".".join(["interaction", *segments[:i]])
                raise SpecError(f"bad field {path!r}: {where} is a list; use an index like .0")
            out.append(seg)
            kind = "any"
        elif kind == "any":
            out.append(seg)
        else:
            raise SpecError(f"bad field {path!r}: interaction.{'.'.join(out)} is a value with no sub-fields")
    return out


def _nested_models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """Every model reachable from `model`'s fields (Party, Content, Transaction, ...)."""
    found: list[type[BaseModel]] = []
    for f in model.model_fields.values():
        shape = _shape(f.annotation)
        if isinstance(shape, type) and shape not in found:
            found += [shape, *_nested_models(shape)]
    return found


def _shape(annotation: Any) -> Any:
    """A model class, "map", "list", "leaf" or "any" (for list items we do not look into)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _shape(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        shapes = [_shape(a) for a in typing.get_args(annotation) if a is not type(None)]
        models = [s for s in shapes if isinstance(s, type)]
        return models[0] if models else (shapes[0] if len(shapes) == 1 else "leaf")
    if origin is dict:
        return "map"
    if origin is list:
        return "list"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return "leaf"


def _suggest(word: str, choices: list[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean '{prefix}{close[0]}'?" if close else ""


def compile_getter(path: str) -> Getter:
    """A function env -> value. `path` must have passed `check_field`."""
    root, *keys = path.split(".")
    if root == "now":
        return _now
    if root == "interaction" and len(keys) <= 2 and all(k in _MODEL_ATTRS for k in keys):
        return _attr_getter(keys)
    if len(keys) == 1:
        (key,) = keys

        def get1(env: Any) -> Any:
            obj = getattr(env, root)
            if obj is None:
                return MISSING
            # dicts first: the profile and the task are dicts, and this is the hot path
            value = obj.get(key, MISSING) if obj.__class__ is dict else _step(obj, key)
            return MISSING if value is None else value

        return get1
    steps = tuple(keys)

    def get(env: Any) -> Any:
        obj = getattr(env, root)
        for key in steps:
            if obj is None or obj is MISSING:
                return MISSING
            obj = _step(obj, key)
        return MISSING if obj is None else obj

    return get


# Attribute names of the Interaction model and its nested models: a path made only of these is
# read with plain getattr (the schema was checked at load, so the attributes exist).
_MODELS: list[type[BaseModel]] = [Interaction, *_nested_models(Interaction)]
_MODEL_ATTRS = frozenset(name for model in _MODELS for name in model.model_fields) - {"metadata"}


def _attr_getter(keys: list[str]) -> Getter:
    if len(keys) == 1:
        (name,) = keys

        def attr1(env: Any) -> Any:
            obj = env.interaction
            if obj is None:
                return MISSING
            value = getattr(obj, name, None)
            return MISSING if value is None else value

        return attr1
    first, second = keys

    def attr2(env: Any) -> Any:
        obj = env.interaction
        if obj is None:
            return MISSING
        obj = getattr(obj, first, None)
        if obj is None:
            return MISSING
        value = getattr(obj, second, None) if obj.__class__ is not dict else obj.get(second)
        return MISSING if value is None else value

    return attr2


def _now(env: Any) -> Any:
    return env.now


def _step(obj: Any, key: str) -> Any:
    # Only mapping keys, declared model fields and list indexes are reachable: a rule can never
    # reach a method or a dunder attribute.
    cls = obj.__class__
    if cls is dict:
        return obj.get(key, MISSING)
    fields = getattr(cls, "__pydantic_fields__", None)
    if fields is not None:
        return getattr(obj, key) if key in fields else MISSING
    if isinstance(obj, dict):
        return obj.get(key, MISSING)
    if isinstance(obj, (list, tuple)) and key.isdigit():
        index = int(key)
        return obj[index] if index < len(obj) else MISSING
    return MISSING
