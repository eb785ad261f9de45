"""Parameters have one source: the signatures of a project's ``build_pipeline`` and ``load``.

A project writes each default once, as a keyword default of ``build_pipeline`` (or of ``load`` for data
parameters). Allowed values come from ``Literal[...]`` annotations. A project with several models groups
each model's settings in a frozen dataclass used as the default of one argument (``xgboost:
XGBoostParams = XGBoostParams()``); its fields appear as dotted keys (``xgboost.max_depth``) on the command
line, in MLflow and in variants, and are put back into the dataclass before ``build_pipeline`` is called.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from common.errors import ParameterError

# Arguments of ``load`` that the generic path fills itself; they are not user parameters.
LOADER_RESERVED = ("data_dir", "sample")


def _literal_choices(annotation: Any) -> tuple[Any, ...] | None:
    """The allowed values of ``Literal[...]`` (also inside ``Optional``/unions), else None."""
    if get_origin(annotation) is Literal:
        return tuple(get_args(annotation))
    if get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        found: list[Any] = []
        for arg in get_args(annotation):
            inner = _literal_choices(arg)
            if inner:
                found.extend(inner)
        return tuple(found) or None
    return None


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations only cost the choices, never the defaults
        return {}


@dataclass(frozen=True)
class ParamSpace:
    """A project's parameters: flat defaults (dotted for grouped ones), choices, and how to rebuild groups.

    Attributes:
        pipeline: ``build_pipeline`` parameters and defaults; grouped fields as ``group.field``.
        data: ``load`` parameters and defaults.
        choices: allowed values per parameter (from ``Literal`` annotations).
        groups: argument name -> the dataclass default it is rebuilt from.
    """

    pipeline: Mapping[str, Any]
    data: Mapping[str, Any]
    choices: Mapping[str, tuple[Any, ...]]
    groups: Mapping[str, Any]

    @classmethod
    def from_functions(cls, build: Callable[..., Any], load: Callable[..., Any] | None = None) -> ParamSpace:
        """Read defaults and choices from the two signatures."""
        pipeline: dict[str, Any] = {}
        choices: dict[str, tuple[Any, ...]] = {}
        groups: dict[str, Any] = {}
        hints = _hints(build)
        for name, p in inspect.signature(build).parameters.items():
            if p.default is inspect.Parameter.empty or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            if dataclasses.is_dataclass(p.default) and not isinstance(p.default, type):
                groups[name] = p.default
                field_hints = _hints(type(p.default))
                for f in dataclasses.fields(p.default):
                    key = f"{name}.{f.name}"
                    pipeline[key] = getattr(p.default, f.name)
                    allowed = _literal_choices(field_hints.get(f.name))
                    if allowed:
                        choices[key] = allowed
                continue
            pipeline[name] = p.default
            allowed = _literal_choices(hints.get(name))
            if allowed:
                choices[name] = allowed
        data: dict[str, Any] = {}
        if load is not None:
            load_hints = _hints(load)
            for name, p in inspect.signature(load).parameters.items():
                if name in LOADER_RESERVED or p.default is inspect.Parameter.empty:
                    continue
                if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    continue
                data[name] = p.default
                allowed = _literal_choices(load_hints.get(name))
                if allowed:
                    choices[name] = allowed
        clash = sorted(set(pipeline) & set(data))
        if clash:
            raise ParameterError(f"parameters {clash} are arguments of both build_pipeline and load; rename one.")
        return cls(pipeline, data, choices, groups)

    def resolve(self, overrides: Mapping[str, Any] | None = None, project: str = "project"
                ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split and type-check user overrides into (flat pipeline params, data params).

        Strings (as they come from ``--param key=value``) are converted to the type of the default.

        Raises:
            ParameterError: for an unknown key, a value of the wrong type, or a value not in ``choices``.
        """
        pipeline = dict(self.pipeline)
        data = dict(self.data)
        for key, raw in (overrides or {}).items():
            if key in pipeline:
                target = pipeline
            elif key in data:
                target = data
            else:
                known = ", ".join(sorted([*pipeline, *data])) or "(none)"
                raise ParameterError(
                    f"Unknown parameter '{key}' for project '{project}'. Known parameters: {known}."
                )
            value = coerce(raw, target[key], key)
            allowed = self.choices.get(key)
            if allowed is not None and value not in allowed:
                raise ParameterError(
                    f"Parameter '{key}' of project '{project}' must be one of "
                    f"{', '.join(map(str, allowed))}; got {value!r}."
                )
            target[key] = value
        return pipeline, data

    def build_kwargs(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments of ``build_pipeline``: dotted keys folded back into their dataclasses."""
        out: dict[str, Any] = {}
        fields: dict[str, dict[str, Any]] = {}
        for key, value in flat.items():
            group, dot, name = key.partition(".")
            if dot and group in self.groups:
                fields.setdefault(group, {})[name] = value
            else:
                out[key] = value
        for group, values in fields.items():
            base = out.pop(group, None) or self.groups[group]
            out[group] = dataclasses.replace(base, **values)
        return out


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def coerce(raw: Any, default: Any, key: str = "value") -> Any:
    """Convert ``raw`` to the type of ``default`` (strings from the command line, or Python values).

    Raises:
        ParameterError: when the conversion is impossible.
    """
    if not isinstance(raw, str):
        if default is None or isinstance(raw, type(default)) or (
            isinstance(default, float) and isinstance(raw, int) and not isinstance(raw, bool)
        ):
            return float(raw) if isinstance(default, float) else raw
        if isinstance(default, tuple) and isinstance(raw, list):
            return tuple(raw)
        raise ParameterError(f"Parameter '{key}' expects {type(default).__name__}; got {raw!r}.")
    text = raw.strip()
    try:
        if isinstance(default, bool):
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, tuple | list):
            items = [s.strip() for s in text.split(",") if s.strip()]
            kind = type(default[0]) if default else str
            return type(default)(coerce(item, kind(), key) if kind is not str else item for item in items)
        if default is None:
            if text.lower() in {"none", "null", ""}:
                return None
            try:
                return ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return text
    except ValueError:
        raise ParameterError(
            f"Parameter '{key}' expects {type(default).__name__} (default {default!r}); got {raw!r}."
        ) from None
    return text
