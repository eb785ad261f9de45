"""Finds the projects under ``projects/`` by convention and checks each is well formed.

A project is a package ``projects/<name>/`` with ``spec.py`` (``SPEC``), ``data.py`` (``load``) and
``pipeline.py`` (``build_pipeline``). Optional: ``evaluate.py`` (``evaluate``: a custom protocol),
``evaluate.py`` may instead give ``HOOKS`` (``common.protocol.EvaluationHooks``: a split, per-fold,
metric, artifact or model-choice rule added to the generic supervised protocol), ``report.py`` (``report``:
extra metrics and artifacts), ``bench.py`` (``bench``: custom benchmark
figures), ``synthetic.py`` (``generate``: small data of the real schema for tests and benchmarks), and
``baselines``/``signature_example`` in ``pipeline.py``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from common.errors import ParameterError, ProjectDefinitionError, ProjectNotFoundError
from common.params import ParamSpace
from common.spec import ProjectSpec

PACKAGE = "projects"


@dataclass(frozen=True)
class Project:
    """A loaded project: its spec and the functions the generic path calls."""

    spec: ProjectSpec
    load: Callable[..., Any]
    build_pipeline: Callable[..., Any]
    params: ParamSpace
    evaluate: Callable[..., Any] | None = None
    hooks: Any = None
    report: Callable[..., Any] | None = None
    baselines: Callable[..., Any] | None = None
    generate: Callable[..., Any] | None = None
    signature_example: Callable[..., Any] | None = None
    bench: Callable[..., Any] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def resolve_params(self, overrides: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(flat pipeline parameters, data parameters): defaults from the signatures, plus checked overrides."""
        return self.params.resolve(overrides, self.name)

    def build(self, params: Mapping[str, Any] | None = None) -> Any:
        """An unfitted pipeline from flat parameters (dotted keys folded back into their groups)."""
        return self.build_pipeline(**self.params.build_kwargs(params or {}))


def _optional(module: str, attr: str) -> Any:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise
    return getattr(mod, attr, None)


def _load(name: str) -> Project:
    base = f"{PACKAGE}.{name}"
    try:
        spec = importlib.import_module(f"{base}.spec").SPEC
        load = importlib.import_module(f"{base}.data").load
        pipeline_mod = importlib.import_module(f"{base}.pipeline")
    except (ModuleNotFoundError, AttributeError) as exc:
        raise ProjectDefinitionError(
            f"projects/{name} is not a valid project: {exc}. A project needs spec.py (SPEC), data.py (load) "
            "and pipeline.py (build_pipeline)."
        ) from exc
    build = getattr(pipeline_mod, "build_pipeline", None)
    if not isinstance(spec, ProjectSpec) or not callable(build):
        raise ProjectDefinitionError(f"projects/{name}: SPEC must be a ProjectSpec and build_pipeline a function.")
    if spec.name != name:
        raise ProjectDefinitionError(f"projects/{name}: SPEC.name is '{spec.name}', it must equal the folder name.")
    try:
        params = ParamSpace.from_functions(build, load)
    except ParameterError as exc:
        raise ProjectDefinitionError(f"projects/{name}: {exc}") from exc
    for variant in spec.variants:
        try:
            params.resolve(variant, name)
        except ParameterError as exc:
            raise ProjectDefinitionError(f"projects/{name}: a variant in SPEC.variants is invalid: {exc}") from exc
    return Project(
        spec=spec,
        load=load,
        build_pipeline=build,
        params=params,
        evaluate=_optional(f"{base}.evaluate", "evaluate"),
        hooks=_optional(f"{base}.evaluate", "HOOKS"),
        report=_optional(f"{base}.report", "report"),
        baselines=getattr(pipeline_mod, "baselines", None),
        generate=_optional(f"{base}.synthetic", "generate"),
        signature_example=getattr(pipeline_mod, "signature_example", None),
        bench=_optional(f"{base}.bench", "bench"),
    )


def names() -> list[str]:
    """Names of every project folder, sorted."""
    pkg = importlib.import_module(PACKAGE)
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.ispkg and not m.name.startswith("_"))


def _key(name: str) -> str:
    key = name.strip().replace("-", "_").lower()
    available = names()
    if key not in available:
        import difflib

        close = difflib.get_close_matches(key, available, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ProjectNotFoundError(
            f"Unknown project '{name}'.{hint} Available projects: {', '.join(available)}."
        )
    return key


@cache
def get(name: str) -> Project:
    """The project called ``name`` (``house-prices`` and ``house_prices`` both work).

    Raises:
        ProjectNotFoundError: listing the projects that do exist.
    """
    return _load(_key(name))


def get_spec(name: str) -> ProjectSpec:
    """Only the project's spec: no data or pipeline module is imported (what loading a model needs)."""
    key = _key(name)
    try:
        spec = importlib.import_module(f"{PACKAGE}.{key}.spec").SPEC
    except (ModuleNotFoundError, AttributeError) as exc:
        raise ProjectDefinitionError(f"projects/{key} is not a valid project: {exc}.") from exc
    return spec


def all_projects() -> list[Project]:
    """Every registered project, loaded and checked."""
    return [get(n) for n in names()]
