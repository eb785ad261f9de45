"""The commands shown in README.md and docs/*.md are checked against the code, so the docs cannot drift.

Every ``mlprojects ...`` line in a fenced shell block (and every inline code span that is a command) must
parse with the real argument parser, name registered projects and real ``--param`` keys with acceptable
values; every ``make`` target and variable must exist in the Makefile; test files and ``python -m``
modules must exist; every environment variable the docs name must be read by the code (or be on a short
allow-list of other tools' variables). Python blocks must compile, import names that exist and name real
projects. The cheap commands are executed: ``mlprojects --help``, every subcommand's ``--help``,
``mlprojects list``, ``make help``, and the README's quick-start (train on generated data, predict from a
tiny CSV with the documented command, then the README's Python block). Failures name the doc file and line.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import io
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.settings import TEST_PARAMS

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "data" / "README.md"]
SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh"}
CODE_DIRS = ("common", "projects", "scripts")
# Variables of other tools that the docs may name although our code never reads them (name: why allowed).
# MLFLOW_* names are also accepted when MLflow itself documents them in ``mlflow.environment_variables``.
ALLOWED_ENV = {
    "MLFLOW_TRACKING_URI": "MLflow's own store/server variable; MLflow reads it (common.tracking too)",
    "OMP_NUM_THREADS": "read by the OpenMP runtime of scikit-learn/XGBoost; the Makefile sets it for tests",
}
ENV_PREFIXES = ("MLPROJECTS", "MLFLOW", "KAGGLE", "OMP")


# --------------------------------------------------------------------------------------------- parsing
@dataclass(frozen=True)
class Block:
    """A fenced code block: its language, the doc line of its first code line, and its text."""

    path: str
    line: int
    lang: str
    text: str


@dataclass(frozen=True)
class Command:
    """One command as the docs show it; ``inline`` when it comes from a code span in prose."""

    path: str
    line: int
    argv: tuple[str, ...]
    inline: bool = False

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def __str__(self) -> str:
        return f"{self.where}: `{shlex.join(self.argv)}`"


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def fenced_blocks(path: Path) -> list[Block]:
    """Fenced code blocks of a Markdown file, with the line number of their first code line."""
    blocks: list[Block] = []
    lang, start, body = None, 0, []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fence = re.match(r"^\s*```\s*([\w+-]*)", line)
        if fence and lang is None:
            lang, start, body = fence.group(1).lower(), number + 1, []
        elif fence:
            blocks.append(Block(_rel(path), start, lang, "\n".join(body)))
            lang = None
        elif lang is not None:
            body.append(line)
    return blocks


def _prose_lines(path: Path) -> list[tuple[int, str]]:
    """Lines outside fenced blocks."""
    out, inside = [], False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if re.match(r"^\s*```", line):
            inside = not inside
        elif not inside:
            out.append((number, line))
    return out


def _split_commands(text: str) -> list[list[str]]:
    """Shell words of a line, split at ``&&``/``||``/``;``/``|``, with leading ``VAR=value`` dropped."""
    try:
        words = shlex.split(text, comments=True)
    except ValueError:  # an unbalanced quote (an apostrophe in prose): plain words are enough here
        words = re.sub(r"(^|\s)#.*$", "", text).split()
    words = [w.removeprefix("[").removesuffix("]") for w in words]
    commands, current = [], []
    for word in [*words, ";"]:
        if word in {"&&", "||", ";", "|"}:
            while current and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", current[0]):
                current.pop(0)
            if current and current[0] != "export":
                commands.append(current)
            current = []
        elif word:
            current.append(word)
    return commands


def _tool(word: str) -> str:
    return word.rsplit("/", 1)[-1]


TOOLS = {"mlprojects", "make", "pytest", "python", "python3"}


def commands(path: Path) -> list[Command]:
    """Every command in the shell blocks and the inline code spans of one doc."""
    found: list[Command] = []
    for block in fenced_blocks(path):
        if block.lang not in SHELL_LANGS:
            continue
        pending, first = "", 0
        for offset, line in enumerate(block.text.splitlines()):
            line = re.sub(r"^\s*\$ ", "", line) if block.lang == "console" else line
            if not pending:
                first = block.line + offset
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            for argv in _split_commands(pending + line):
                if _tool(argv[0]) in TOOLS:
                    found.append(Command(block.path, first, tuple(argv)))
            pending = ""
    project = path.stem if path.parent.name == "docs" else None
    for number, line in _prose_lines(path):
        for span in re.findall(r"`([^`]+)`", line):
            parts = _split_commands(span)
            if project and re.match(r"^(--param|-p) ", span) and span != "--param key=value":
                # `--param x=y` in a project's page is a parameter of that project.
                parts = [["mlprojects", "train", project, *parts[0]]] if parts else []
            for argv in parts:
                if _tool(argv[0]) in TOOLS and not (_tool(argv[0]) in {"python", "python3"} and "-m" not in argv):
                    found.append(Command(_rel(path), number, tuple(argv), inline=True))
    return found


ALL_COMMANDS = [c for doc in DOCS if doc.exists() for c in commands(doc)]
CLI_COMMANDS = [c for c in ALL_COMMANDS if _tool(c.argv[0]) == "mlprojects"]
MAKE_COMMANDS = [c for c in ALL_COMMANDS if _tool(c.argv[0]) == "make"]
OTHER_COMMANDS = [c for c in ALL_COMMANDS if _tool(c.argv[0]) not in {"mlprojects", "make"}]
PY_BLOCKS = [b for doc in DOCS if doc.exists() for b in fenced_blocks(doc) if b.lang == "python"]


def _ids(items: list[Command] | list[Block]) -> list[str]:
    """``path:line`` test ids; a second command on the same line gets ``#2`` (not pytest's bare suffix)."""
    ids: list[str] = []
    for item in items:
        base = f"{item.path}:{item.line}"
        ids.append(base if base not in ids else f"{base}#{sum(i.split('#')[0] == base for i in ids) + 1}")
    return ids


# The documented shape of an override rather than a real one.
GENERIC_PARAM_FORMS = {("name", "value"), ("key", "value"), ("KEY", "VALUE")}


def _placeholder(value: str) -> bool:
    """``...``, ``<name>`` or nothing after ``=``: the docs leave the value to the reader."""
    return not value or "..." in value or "…" in value or bool(re.search(r"<[^>]*>", value))


# ------------------------------------------------------------------------------------------ the checks
def _parse(argv: list[str]) -> tuple[object | None, str]:
    """Parse with the real CLI parser without running anything: (namespace or None, argparse's message)."""
    from common import cli

    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            return cli.build_parser().parse_args(argv), ""
    except SystemExit as exc:
        if exc.code == 0:  # --help
            return None, ""
        return None, err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {exc.code}"


def _project_problems(name: str) -> list[str]:
    from common import registry
    from common.errors import MLProjectsError

    if _placeholder(name):
        return []
    try:
        registry.get(name)
    except MLProjectsError as exc:
        return [f"project '{name}': {exc}"]
    except Exception as exc:  # noqa: BLE001 - a project whose code is broken: say so at the doc's line
        return [f"project '{name}' cannot be loaded: {type(exc).__name__}: {exc}"]
    return []


def cli_problems(command: Command) -> list[str]:
    """What is wrong with one documented ``mlprojects`` command (empty when it matches the code)."""
    from common import cli, registry
    from common.errors import MLProjectsError

    argv = list(command.argv[1:])
    if not argv:
        return []
    if command.inline and len(argv) == 1 and not argv[0].startswith("-"):
        # Prose naming a subcommand (`mlprojects evaluate`): the subcommand must exist.
        _, message = _parse([argv[0], "--help"])
        return [message] if message else []
    args, message = _parse(argv)
    if message:
        return [f"the parser refuses it: {message}"]
    if args is None:
        return []
    problems: list[str] = []
    names = [getattr(args, "project", None), *(getattr(args, "projects", None) or [])]
    for name in filter(None, names):
        problems += _project_problems(name)
    if problems or not getattr(args, "param", None):
        return problems
    project = registry.get(args.project)
    try:
        overrides = cli._params(args.param)
    except MLProjectsError as exc:
        return [str(exc)]
    known = {**project.params.pipeline, **project.params.data}
    for key, value in overrides.items():
        if (key, value) in GENERIC_PARAM_FORMS:
            continue  # the form itself, as in "--param name=value"
        if _placeholder(value):
            if key not in known:
                problems.append(f"--param {key}: no such parameter of {project.name} (known: {', '.join(known)})")
            continue
        try:
            project.resolve_params({key: value})
        except MLProjectsError as exc:
            problems.append(f"--param {key}={value}: {exc}")
    return problems


def makefile_targets() -> set[str]:
    """Targets of the Makefile's rules (not variable assignments)."""
    targets: set[str] = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        rule = re.match(r"^([^\s:#=][^:#=]*?)\s*::?(?!=)", line)
        if rule:
            targets.update(rule.group(1).split())
    return targets


def make_problems(command: Command) -> list[str]:
    """What is wrong with one documented ``make`` command."""
    text = (ROOT / "Makefile").read_text()
    targets = makefile_targets()
    problems: list[str] = []
    for word in command.argv[1:]:
        if word.startswith("-"):
            continue
        var, eq, value = word.partition("=")
        if eq:
            if not re.search(rf"\$[({{]{re.escape(var)}[)}}]|^(export\s+)?{re.escape(var)}\s*[?:+]?=", text, re.M):
                problems.append(f"make variable {var} is not used by the Makefile")
            elif var == "PROJECT":
                problems += _project_problems(value)
        elif not _placeholder(word) and word not in targets:
            problems.append(f"make target '{word}' does not exist (targets: {', '.join(sorted(targets))})")
    return problems


def other_problems(command: Command) -> list[str]:
    """``pytest <file>`` must name existing files; ``python -m <module>`` a module taking those flags."""
    argv = list(command.argv)
    if _tool(argv[0]) == "pytest":
        return [f"{w} does not exist" for w in argv[1:]
                if not w.startswith("-") and w.startswith("tests") and not (ROOT / w.split("::")[0]).exists()]
    module = argv[argv.index("-m") + 1] if "-m" in argv and argv.index("-m") + 1 < len(argv) else ""
    if not module or module == "pytest":
        return []
    spec = importlib.util.find_spec(module) if module.split(".")[0] in {"common", "projects"} else None
    if spec is None or spec.origin is None:
        return [f"python module {module} does not exist"]
    source = Path(spec.origin).read_text()
    flags = [w.split("=")[0] for w in argv[argv.index(module) + 1:] if w.startswith("--")]
    return [f"{module} has no option {flag}" for flag in flags if f'"{flag}"' not in source]


@pytest.mark.parametrize("command", CLI_COMMANDS, ids=_ids(CLI_COMMANDS))
def test_documented_cli_command_matches_the_code(command: Command) -> None:
    problems = cli_problems(command)
    assert not problems, f"{command}\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("command", MAKE_COMMANDS, ids=_ids(MAKE_COMMANDS))
def test_documented_make_command_exists(command: Command) -> None:
    problems = make_problems(command)
    assert not problems, f"{command}\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("command", OTHER_COMMANDS, ids=_ids(OTHER_COMMANDS))
def test_documented_test_and_module_commands_exist(command: Command) -> None:
    problems = other_problems(command)
    assert not problems, f"{command}\n  " + "\n  ".join(problems)


def test_the_docs_show_commands() -> None:
    """The parser above finds what the docs show (guards against it silently finding nothing)."""
    readme = {c.argv[1] for c in CLI_COMMANDS if c.path == "README.md" and len(c.argv) > 1}
    assert {"list", "train", "predict", "evaluate", "bench"} <= readme
    assert any(c.argv[1:2] == ("test",) for c in MAKE_COMMANDS)


# ------------------------------------------------------------------------------- environment variables
def _env_names_read_by_code() -> set[str]:
    """Upper-case names that appear as a whole string literal in our code, or as a word in Makefile/CI."""
    names: set[str] = set()
    for folder in CODE_DIRS:
        for file in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                        and re.fullmatch(r"[A-Z][A-Z0-9_]+", node.value):
                    names.add(node.value)
    for file in [ROOT / "Makefile", *(ROOT / ".ci").glob("*")]:
        if file.is_file():
            names.update(re.findall(r"\b[A-Z][A-Z0-9_]+\b", file.read_text()))
    return names


def documented_env_vars() -> dict[str, list[str]]:
    """Variable-like names in the docs (our prefixes and the projects' names), with where they appear."""
    from common import registry

    prefixes = [*ENV_PREFIXES, *(n.upper() for n in registry.names())]
    pattern = re.compile(rf"\b((?:{'|'.join(prefixes)})_[A-Za-z0-9_.]*[A-Za-z0-9_])")
    found: dict[str, list[str]] = {}
    for doc in DOCS:
        if not doc.exists():
            continue
        for number, line in enumerate(doc.read_text().splitlines(), start=1):
            for name in pattern.findall(line):
                found.setdefault(name, []).append(f"{_rel(doc)}:{number}")
    return found


def _mlflow_documents(name: str) -> bool:
    if not name.startswith("MLFLOW_"):
        return False
    import mlflow.environment_variables as mlflow_env

    return hasattr(mlflow_env, name)


def test_every_documented_environment_variable_is_read() -> None:
    import difflib

    read = _env_names_read_by_code()
    problems = []
    for name, places in sorted(documented_env_vars().items()):
        if name in read or name in ALLOWED_ENV or (name.isidentifier() and _mlflow_documents(name)):
            continue
        close = difflib.get_close_matches(name, sorted(n for n in read if "_" in n), n=1, cutoff=0.5)
        hint = f" (the code reads {close[0]})" if close else ""
        what = "is not a valid variable name" if not name.isidentifier() else "is read nowhere in the code"
        problems += [f"{place}: {name} {what}{hint}" for place in places]
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------- python blocks
_LOADERS = {"load_pipeline", "load_model"}


def python_problems(block: Block) -> list[str]:
    """Compile a Python block; its imports must exist, attributes of imported modules too, projects too."""
    try:
        tree = ast.parse(block.text)
    except SyntaxError as exc:
        return [f"{block.path}:{block.line + (exc.lineno or 1) - 1}: syntax error: {exc.msg}"]
    ast.increment_lineno(tree, block.line - 1)
    problems: list[str] = []
    modules: dict[str, object] = {}
    for node in ast.walk(tree):
        where = f"{block.path}:{getattr(node, 'lineno', block.line)}"
        if isinstance(node, ast.ImportFrom) and node.module:
            try:
                module = importlib.import_module(node.module)
            except ImportError as exc:
                problems.append(f"{where}: cannot import {node.module}: {exc}")
                continue
            for alias in node.names:
                if hasattr(module, alias.name):
                    value = getattr(module, alias.name)
                elif importlib.util.find_spec(f"{node.module}.{alias.name}") is not None:
                    value = importlib.import_module(f"{node.module}.{alias.name}")
                else:
                    problems.append(f"{where}: {node.module} has no {alias.name}")
                    continue
                if type(value).__name__ == "module":
                    modules[alias.asname or alias.name] = value
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if importlib.util.find_spec(alias.name) is None:
                    problems.append(f"{where}: no module {alias.name}")
    for node in ast.walk(tree):
        where = f"{block.path}:{getattr(node, 'lineno', block.line)}"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            if not hasattr(modules[node.value.id], node.attr):
                problems.append(f"{where}: {node.value.id}.{node.attr} does not exist")
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            value = node.args[0].value
            if func in _LOADERS and isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_-]+", value):
                problems += [f"{where}: {p}" for p in _project_problems(value)]
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for name in re.findall(r"models:/([A-Za-z0-9_-]+)@", node.value):
                problems += [f"{where}: {p}" for p in _project_problems(name)]
    return problems


@pytest.mark.parametrize("block", PY_BLOCKS, ids=_ids(PY_BLOCKS))
def test_python_block_compiles_and_names_real_things(block: Block) -> None:
    problems = python_problems(block)
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------- files and links
def test_relative_links_point_to_files() -> None:
    problems = []
    for doc in DOCS:
        if not doc.exists():
            continue
        for number, line in _prose_lines(doc):
            for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", line):
                if "://" not in target and not target.startswith("mailto:") \
                        and not (doc.parent / target).exists():
                    problems.append(f"{_rel(doc)}:{number}: link to {target}, which does not exist")
    assert not problems, "\n".join(problems)


def test_readme_project_table_is_the_registry() -> None:
    from common import registry

    text = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", text, re.M))
    assert listed == set(registry.names()), f"README.md project table {sorted(listed)} vs {registry.names()}"
    targets = makefile_targets()
    missing = [n for n in registry.names() if registry.get_spec(n).make_target not in targets]
    assert not missing, f"README.md says every project has a make target; Makefile lacks one for {missing}"


# ------------------------------------------------------------------------------ executing cheap commands
def _cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    from common import cli
    from common.console import console

    # rich wraps table cells to the terminal's width, which a test run does not fix
    width, console.width = console.width, 200
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # --help
        code = int(exc.code or 0)
    finally:
        console.width = width
    out = capsys.readouterr()
    return code, out.out + out.err


def test_help_of_the_cli_and_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from common import cli

    entry = Path(sys.executable).parent / "mlprojects"
    if entry.exists():  # the installed console script, as the docs call it
        done = subprocess.run([str(entry), "--help"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "COMMAND" in done.stdout, done.stderr
    code, text = _cli(capsys, ["--help"])
    assert code == 0 and "usage: mlprojects" in text
    subparsers = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in subparsers.choices:
        code, text = _cli(capsys, [name, "--help"])
        assert code == 0 and f"mlprojects {name}" in text, f"mlprojects {name} --help failed:\n{text}"
    documented = {c.argv[1] for c in CLI_COMMANDS if len(c.argv) > 1 and not c.argv[1].startswith("-")}
    assert documented <= set(subparsers.choices), f"documented but missing: {documented - set(subparsers.choices)}"


def test_mlprojects_list_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from common import registry

    code, text = _cli(capsys, ["list"])
    assert code == 0, text
    for name in registry.names():
        assert name in text and f"make {registry.get_spec(name).make_target}" in text


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_help_lists_every_phony_target() -> None:
    done = subprocess.run(["make", "-s", "--no-print-directory", "help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)
    phony = re.search(r"^\.PHONY:((?:.*\\\n)*.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert phony, "Makefile has no .PHONY line"
    undocumented = [t for t in phony.group(1).replace("\\", " ").split() if not re.search(rf"^\s*{t}\s", listed, re.M)]
    assert not undocumented, f"README.md says `make help` lists every target; these have no ## comment: {undocumented}"


def _readme_command(subcommand: str, project: str | None = None) -> Command | None:
    for c in CLI_COMMANDS:
        if c.path == "README.md" and c.argv[1:2] == (subcommand,) and (project is None or project in c.argv):
            return c
    return None


def test_readme_quickstart_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    """The README's train, predict and Python lines, run as written (generated data, a tiny input file)."""
    import pandas as pd

    from common import registry, splits, train

    predict = _readme_command("predict")
    assert predict is not None and "--input" in predict.argv, "README.md shows no `mlprojects predict --input`"
    name = predict.argv[2]
    project = registry.get(name)
    synth = importlib.import_module(f"projects.{project.name}.synthetic")
    data = synth.generate()

    def generated(project_, data_params, sample=None, data_dir=None):  # the real loader needs real data
        return splits.subsample(synth.generate(), sample, project_.spec.split) if sample else synth.generate()

    monkeypatch.setattr(train, "load_dataset", generated)
    monkeypatch.chdir(tmp_path)

    documented_train = _readme_command("train", name)
    if documented_train is not None:
        code, text = _cli(capsys, list(documented_train.argv[1:]))
        assert code == 0, f"{documented_train} failed:\n{text}"
    else:
        train.run(project.name, TEST_PARAMS.get(project.name, {}), dataset=data)

    argv = list(predict.argv[1:])
    source = Path(argv[argv.index("--input") + 1])
    example = synth.predict_example(data) if hasattr(synth, "predict_example") else \
        train._signature_example(project, splits.take(data.X, list(range(3))))
    frame = example if isinstance(example, pd.DataFrame) else pd.DataFrame(example)
    frame.to_csv(source, index=False)
    code, text = _cli(capsys, argv)
    assert code == 0, f"{predict} failed:\n{text}"
    if "--output" in argv:
        written = pd.read_csv(argv[argv.index("--output") + 1])
        assert len(written) == len(frame) and project.spec.target in written.columns, f"{predict}: {written}"

    ran = 0
    for block in (b for b in PY_BLOCKS if b.path == "README.md"):
        if f'"{name}"' not in block.text:
            continue  # another project's model is not trained here; compiled by the test above
        code_object = compile(ast.increment_lineno(ast.parse(block.text), block.line - 1), block.path, "exec")
        exec(code_object, {"__name__": "readme"})  # noqa: S102 - the README's own example
        ran += 1
    assert ran, f"README.md has no Python block that loads {name}"
