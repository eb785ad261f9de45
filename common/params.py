"""Parameters have one source: the signatures of a project's ``build_pipeline`` and ``load``.

A project writes each default once, as a keyword default of ``build_pipeline`` (or of ``load`` for data
parameters). Allowed values come from ``Literal[...]`` annotations. A project with several models groups
each model's settings in a frozen dataclass used as the default of one argument (``xgboost:
XGBoostParams = XGBoostParams()``); its fields appear as dotted keys (``xgboost.max_depth``) on the command
line, in MLflow and in variants, and are put back into the dataclass before ``build_pipeline`` is called.

Numeric ranges are declared in the same annotations with ``annotated-types`` constraints
(``linear_alpha: Annotated[float, Gt(0)] = 3e-4``, ``clip_quantile: Annotated[float, Interval(ge=0, lt=0.5)]``;
``tuple[Annotated[float, Gt(0)], ...]`` constrains every item). ``ParamSpace.resolve`` checks them, and rejects
NaN and infinite floats, before any data is read; an infinite value is allowed only where the range says so
(``Le(math.inf)``).

Where tuning looks (``mlprojects tune``, ``common.tune``) is declared in the same annotation with a ``Search``
marker: ``C: Annotated[float, Gt(0), Search(1e-3, 10, log=True)] = 0.03``, ``Annotated[int, Ge(1),
Search(2, 8)]``, ``Annotated[Literal["a", "b"], Search()]`` (every choice) or ``Search(choices=(...))``.
Keeping the search range beside the bounds, under the ``build_pipeline`` argument's own name, means there
is no second list of names to drift, and ``from_functions`` checks every range against the declared bounds
and choices (a search that could propose a value ``resolve`` rejects is a definition error).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args, get_origin

from annotated_types import BaseMetadata, Ge, GroupedMetadata, Gt, Interval, Le, Lt

from common.errors import ParameterError, ProjectDefinitionError

# Arguments of ``load`` that the generic path fills itself; they are not user parameters.
LOADER_RESERVED = ("data_dir", "sample")

#: A random seed: numpy and the estimators built on it accept 0 to 2**32 - 1.
Seed = Annotated[int, Interval(ge=0, lt=2**32)]


_UNIONS = (typing.Union, types.UnionType)


@dataclass(frozen=True)
class Search:
    """Where hyperparameter tuning looks for one parameter (a marker in its ``Annotated`` metadata).

    Either a numeric range (``low``/``high``, both inclusive, with ``log=True`` for scale parameters and an
    optional ``step`` for a grid) or categorical ``choices``. ``Search()`` on a ``Literal`` or ``bool``
    parameter searches every allowed value. An ``int`` parameter's range is searched in whole numbers.

    Attributes:
        low: smallest value tried.
        high: largest value tried.
        log: sample uniformly in log space (regularisation strengths, learning rates).
        step: grid step of a numeric range (None: continuous floats, or every integer).
        choices: the values tried, for a categorical search (None with no range: every ``Literal``/bool value).
    """

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    @property
    def numeric(self) -> bool:
        """True for a ``low``..``high`` range, False for categorical choices."""
        return self.low is not None or self.high is not None

    def text(self) -> str:
        """The search range for messages and docs, e.g. ``1e-05..0.1 (log)`` or ``one of a, b``."""
        if self.numeric:
            extra = " (log)" if self.log else (f" (step {_show(self.step)})" if self.step else "")
            return f"{_show(self.low)}..{_show(self.high)}{extra}"
        return "one of " + ", ".join(map(str, self.choices or ()))


def _search_marker(annotation: Any) -> Search | None:
    """The ``Search`` marker in an ``Annotated`` annotation (also inside ``Optional``/unions), else None."""
    origin = get_origin(annotation)
    if origin is Annotated:
        found = [m for m in get_args(annotation)[1:] if isinstance(m, Search)]
        return found[0] if found else None
    if origin in _UNIONS:
        for arg in get_args(annotation):
            inner = _search_marker(arg)
            if inner is not None:
                return inner
    return None


def _checked_search(marker: Search, key: str, default: Any, choices: tuple[Any, ...] | None,
                    bounds: Bounds | None, owner: str) -> Search:
    """The marker with its choices filled in, after checking it against the parameter's own declaration.

    Raises:
        ProjectDefinitionError: a range on a non-numeric parameter, ``low > high``, a log range that
            reaches 0, an end outside the declared bounds, or a choice the parameter does not allow.
    """
    where = f"{owner}: the Search of '{key}'"
    if marker.numeric:
        if marker.choices is not None or marker.low is None or marker.high is None:
            raise ProjectDefinitionError(f"{where} needs both low and high (or only choices).")
        if not _number(default):
            raise ProjectDefinitionError(f"{where} is a numeric range, but the parameter is not a number.")
        if marker.low > marker.high:
            raise ProjectDefinitionError(f"{where} has low > high ({marker.low} > {marker.high}).")
        if marker.log and marker.low <= 0:
            raise ProjectDefinitionError(f"{where} is on a log scale, so low must be > 0; got {marker.low}.")
        if isinstance(default, int) and not (float(marker.low).is_integer() and float(marker.high).is_integer()):
            raise ProjectDefinitionError(f"{where} must have whole-number ends for an int parameter.")
        for end in (marker.low, marker.high):
            problem = violation(end, bounds)
            if problem is not None:
                raise ProjectDefinitionError(f"{where}: the end {end!r} {problem} (the parameter's own range).")
        return marker
    if marker.choices is not None:
        tried = tuple(marker.choices)
    elif choices:
        tried = tuple(choices)
    elif isinstance(default, bool):
        tried = (True, False)
    else:
        raise ProjectDefinitionError(f"{where} has no range and no choices; give Search(low, high) or "
                                     "Search(choices=(...)) (a bare Search() is for Literal and bool parameters).")
    if not tried:
        raise ProjectDefinitionError(f"{where} has no choices.")
    for value in tried:
        if choices and value not in choices:
            raise ProjectDefinitionError(f"{where}: {value!r} is not one of the allowed {', '.join(map(str, choices))}.")
        problem = violation(value, bounds)
        if problem is not None:
            raise ProjectDefinitionError(f"{where}: the choice {value!r} {problem}.")
    return Search(choices=tried)


def _literal_choices(annotation: Any) -> tuple[Any, ...] | None:
    """The allowed values of ``Literal[...]`` (also inside ``Annotated``/``Optional``/unions), else None."""
    if get_origin(annotation) is Annotated:
        return _literal_choices(get_args(annotation)[0])
    if get_origin(annotation) is Literal:
        return tuple(get_args(annotation))
    if get_origin(annotation) in _UNIONS:
        found: list[Any] = []
        for arg in get_args(annotation):
            inner = _literal_choices(arg)
            if inner:
                found.extend(inner)
        return tuple(found) or None
    return None


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:  # noqa: BLE001 - unresolvable annotations only cost the choices, never the defaults
        return {}


_SYMBOLS: dict[type, tuple[str, str, Callable[[Any, Any], bool]]] = {
    Gt: ("gt", ">", lambda v, b: v > b),
    Ge: ("ge", ">=", lambda v, b: v >= b),
    Lt: ("lt", "<", lambda v, b: v < b),
    Le: ("le", "<=", lambda v, b: v <= b),
}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Bounds:
    """The numeric range of one parameter, from its ``annotated-types`` constraints.

    Attributes:
        constraints: ``Gt``/``Ge``/``Lt``/``Le`` (an ``Interval`` is stored as its parts).
        each: the value is a tuple or list and every item must be in the range.
    """

    constraints: tuple[BaseMetadata, ...]
    each: bool = False

    @property
    def allows_inf(self) -> bool:
        """True when the range explicitly admits infinity (``Le(math.inf)`` or ``Ge(-math.inf)``)."""
        return any(isinstance(c, Le | Ge) and _bound(c) in (math.inf, -math.inf) for c in self.constraints)

    def text(self) -> str:
        """The range for messages and help, e.g. ``>= 0 and < 0.5``."""
        return " and ".join(f"{_SYMBOLS[type(c)][1]} {_show(_bound(c))}" for c in self.constraints)

    def admits(self, value: Any) -> bool:
        """Whether one number is in the range (NaN never is; infinity only where the range says so)."""
        if isinstance(value, float) and not math.isfinite(value) and not (
            math.isinf(value) and self.allows_inf
        ):
            return False
        return all(_SYMBOLS[type(c)][2](value, _bound(c)) for c in self.constraints)


def _bound(constraint: BaseMetadata) -> Any:
    return getattr(constraint, _SYMBOLS[type(constraint)][0])


def _show(bound: Any) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def _constraints(metadata: tuple[Any, ...], where: str) -> tuple[BaseMetadata, ...]:
    """The supported constraints in ``Annotated`` metadata; other annotated-types metadata is an error."""
    out: list[BaseMetadata] = []
    for item in metadata:
        parts = list(item) if isinstance(item, GroupedMetadata) else [item]
        for part in parts:
            if type(part) in _SYMBOLS:
                out.append(part)
            elif isinstance(part, BaseMetadata):
                raise ProjectDefinitionError(
                    f"{where}: constraint {part!r} is not supported; use Gt, Ge, Lt, Le or Interval."
                )
    return tuple(out)


def _bounds(annotation: Any, where: str) -> Bounds | None:
    """The range declared in an annotation: ``Annotated[...]`` itself, inside ``Optional``/unions, or on the
    items of ``tuple[Annotated[...], ...]``/``list[...]``; None when there is none."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *metadata = get_args(annotation)
        found = _constraints(tuple(metadata), where)
        return Bounds(found) if found else _bounds(base, where)
    if origin in _UNIONS:
        for arg in get_args(annotation):
            inner = _bounds(arg, where)
            if inner is not None:
                return inner
        return None
    if origin in (tuple, list):
        items = {a for a in get_args(annotation) if a is not Ellipsis}
        if len(items) == 1:
            inner = _bounds(items.pop(), where)
            if inner is not None and not inner.each:
                return Bounds(inner.constraints, each=True)
    return None


def violation(value: Any, bounds: Bounds | None) -> str | None:
    """Why ``value`` is not allowed (``must be > 0; got -1.0``), or None when it is.

    A NaN float is never allowed and an infinite one only where ``bounds`` admit it; items of a tuple or
    list are checked one by one; None and non-numbers have nothing to check.
    """
    each = isinstance(value, tuple | list)
    for item in value if each else (value,):
        if not _number(item):
            continue
        non_finite = isinstance(item, float) and not math.isfinite(item) and not (
            math.isinf(item) and bounds is not None and bounds.allows_inf)
        if bounds.admits(item) if bounds is not None else not non_finite:
            continue
        rule = " ".join(part for part in ("a finite number" if non_finite else "",
                                          bounds.text() if bounds is not None else "") if part)
        return f"must have every item {rule}; got {item!r} in {value!r}" if each else f"must be {rule}; got {item!r}"
    return None


def check_value(key: str, value: Any, bounds: Bounds | None, project: str = "project") -> None:
    """Reject a non-finite float, or a number outside ``bounds``, with the allowed range in the message.

    Raises:
        ParameterError: naming the parameter, the value given and the allowed range.
    """
    problem = violation(value, bounds)
    if problem is not None:
        raise ParameterError(f"Parameter '{key}' of project '{project}' {problem}.")


@dataclass(frozen=True)
class ParamSpace:
    """A project's parameters: flat defaults (dotted for grouped ones), choices, and how to rebuild groups.

    Attributes:
        pipeline: ``build_pipeline`` parameters and defaults; grouped fields as ``group.field``.
        data: ``load`` parameters and defaults.
        choices: allowed values per parameter (from ``Literal`` annotations).
        groups: argument name -> the dataclass default it is rebuilt from.
        bounds: numeric range per parameter (from ``annotated-types`` constraints in ``Annotated``).
        search: where tuning looks, per parameter that declares a ``Search`` marker (choices filled in).
    """

    pipeline: Mapping[str, Any]
    data: Mapping[str, Any]
    choices: Mapping[str, tuple[Any, ...]]
    groups: Mapping[str, Any]
    bounds: Mapping[str, Bounds] = field(default_factory=dict)
    search: Mapping[str, Search] = field(default_factory=dict)

    @classmethod
    def from_functions(cls, build: Callable[..., Any], load: Callable[..., Any] | None = None) -> ParamSpace:
        """Read defaults, choices and ranges from the two signatures.

        Raises:
            ParameterError: a name is an argument of both functions.
            ProjectDefinitionError: a default is outside its own declared range (or not finite), an
                annotation uses an unsupported constraint, or a ``Search`` range does not fit the
                parameter's declaration; the message names the function.
        """
        pipeline: dict[str, Any] = {}
        choices: dict[str, tuple[Any, ...]] = {}
        groups: dict[str, Any] = {}
        bounds: dict[str, Bounds] = {}
        markers: dict[str, Search] = {}
        where: dict[str, str] = {}  # key -> the function or dataclass that declares it, for error messages

        def declare(target: dict[str, Any], key: str, default: Any, annotation: Any, owner: str) -> None:
            target[key] = default
            where[key] = owner
            allowed = _literal_choices(annotation)
            if allowed:
                choices[key] = allowed
            found = _bounds(annotation, f"{owner}: parameter '{key}'")
            if found is not None:
                bounds[key] = found
            marker = _search_marker(annotation)
            if marker is not None:
                markers[key] = marker

        hints = _hints(build)
        build_name = _qualname(build)
        for name, p in inspect.signature(build).parameters.items():
            if p.default is inspect.Parameter.empty or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            if dataclasses.is_dataclass(p.default) and not isinstance(p.default, type):
                groups[name] = p.default
                field_hints = _hints(type(p.default))
                owner = f"{build_name} (argument '{name}', {_qualname(type(p.default))})"
                for f in dataclasses.fields(p.default):
                    declare(pipeline, f"{name}.{f.name}", getattr(p.default, f.name), field_hints.get(f.name), owner)
                continue
            declare(pipeline, name, p.default, hints.get(name), build_name)
        data: dict[str, Any] = {}
        if load is not None:
            load_hints = _hints(load)
            for name, p in inspect.signature(load).parameters.items():
                if name in LOADER_RESERVED or p.default is inspect.Parameter.empty:
                    continue
                if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    continue
                declare(data, name, p.default, load_hints.get(name), _qualname(load))
        clash = sorted(set(pipeline) & set(data))
        if clash:
            raise ParameterError(f"parameters {clash} are arguments of both build_pipeline and load; rename one.")
        for key, default in {**pipeline, **data}.items():
            problem = violation(default, bounds.get(key))
            if problem is not None:  # a project bug, not a user error: name where it is declared
                raise ProjectDefinitionError(f"{where[key]}: the default of '{key}' {problem}.")
        search = {key: _checked_search(marker, key, {**pipeline, **data}[key], choices.get(key), bounds.get(key),
                                       where[key]) for key, marker in markers.items()}
        return cls(pipeline, data, choices, groups, bounds, search)

    def range_text(self, key: str) -> str | None:
        """What ``key`` accepts, for help and listings (``> 0``, ``one of a, b``), or None when unrestricted."""
        if key in self.choices:
            return "one of " + ", ".join(map(str, self.choices[key]))
        found = self.bounds.get(key)
        if found is None:
            return None
        return f"each {found.text()}" if found.each else found.text()

    def resolve(self, overrides: Mapping[str, Any] | None = None, project: str = "project"
                ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split and type-check user overrides into (flat pipeline params, data params).

        Strings (as they come from ``--param key=value``) are converted to the type of the default.

        Raises:
            ParameterError: for an unknown key, a value of the wrong type, a value not in ``choices``, a
                NaN or infinite float, or a number outside its declared range (``bounds``).
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
            check_value(key, value, self.bounds.get(key), project)
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


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


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
