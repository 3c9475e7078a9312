"""Typed configs: dataclasses built from YAML files and `a.b=value` overrides, with strict checking.

Each part of the stack owns its config dataclass (``ModelConfig`` beside the model, ``TrainConfig``
beside training); this module is the one mechanism that loads, overrides, validates and saves them.

A YAML file may name ``base: other.yaml`` (relative to itself); the file's keys are merged over the
base recursively, except that an empty mapping (``key: {}``) replaces the base's mapping instead of
adding nothing to it. Unknown keys and mistyped values raise ``ConfigError`` naming the dotted key, the
value and what was expected.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override does not fit the config's schema."""


def _suggest(key: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert where lossless (int -> float, list -> tuple)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: got {value!r}, expected {tp}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: got {value!r}, expected one of {list(get_args(tp))}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: got {value!r}, expected a mapping for {tp.__name__}")
        return _build(tp, value, where)
    if origin in (list, tuple, Iterable, typing.Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: got {value!r}, expected a list")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: got {len(value)} items, expected {len(args)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: got {value!r}, expected a mapping")
        args = get_args(tp)
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: got {value!r}, expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: got {value!r}, expected an integer")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: got {value!r}, expected a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: got {value!r}, expected a string")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: got {value!r}, expected {tp.__name__}")
    return value


def _build(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise ConfigError(
                f"{dotted}: unknown key for {cls.__name__}{_suggest(str(key), fields)}; known keys: {sorted(fields)}"
            )
        kwargs[key] = _coerce(value, hints[key], dotted)
    try:
        obj = cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc
    return obj


def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build config ``cls`` from a plain mapping, strictly."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"config: got {type(data).__name__}, expected a mapping at the top level")
    return _build(cls, data)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain JSON/YAML-ready dict of a config dataclass (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and v and isinstance(out.get(k), Mapping):  # {} replaces: "none of the base's"
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML config file, resolving ``base:`` chains."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file: {p} does not exist")
    if p.resolve() in _seen:
        raise ConfigError(f"config file: {p} is its own base (cycle through {[str(s) for s in _seen]})")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file: {p} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file: {p} holds {type(data).__name__}, expected a mapping")
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{p}: base: got {base!r}, expected a path string")
        data = _merge(read_yaml(p.parent / base, (*_seen, p.resolve())), data)
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=1"`` -> (["a", "b"], 1); the value is parsed as YAML (so 1, 1.5, true, [1, 2], null work)."""
    if "=" not in text:
        raise ConfigError(f"override: got {text!r}, expected KEY=VALUE such as model.lm.hidden_size=64")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override: got key {key!r}, expected a dotted key such as train.lr")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {key}: value {raw!r} is not valid YAML: {exc}") from exc
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply dotted overrides to a plain dict (a deep copy: ``data`` is left as it was)."""
    out = copy.deepcopy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for k in keys[:-1]:
            nxt = node.get(k)
            if not isinstance(nxt, dict):
                nxt = {}
                node[k] = nxt
            node = nxt
        node[keys[-1]] = value
    return out


def load_config(cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = ()) -> T:
    """Build ``cls`` from defaults, then a YAML file, then ``a.b=value`` overrides."""
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    base = to_dict(cls())
    merged = _merge(base, data)
    try:
        return from_dict(cls, apply_overrides(merged, overrides))
    except ConfigError:
        if path is None:
            raise
        try:  # name the file when its own values are at fault, not an override's
            from_dict(cls, merged)
        except ConfigError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        raise


def missing_keys(cls: type, data: Mapping[str, Any], where: str = "") -> list[str]:
    """Dotted keys of config ``cls`` (nested configs included) that ``data`` does not hold."""
    hints = get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        dotted = f"{where}.{f.name}" if where else f.name
        if f.name not in data:
            out.append(dotted)
        elif dataclasses.is_dataclass(hints[f.name]) and isinstance(data[f.name], Mapping):
            out += missing_keys(hints[f.name], data[f.name], dotted)
    return out


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML (.yaml/.yml) or JSON (.json), atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = to_dict(cfg)
    if p.suffix == ".json":
        text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    elif p.suffix in (".yaml", ".yml"):
        text = yaml.safe_dump(data, sort_keys=False)
    else:
        raise ConfigError(f"config path: got {p}, expected a .yaml, .yml or .json file")
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(p)
    return p
