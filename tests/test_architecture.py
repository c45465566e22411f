"""The layers of docs/architecture.md, checked on the source with ``ast`` (no extra dependency).

The map only stays true if something fails when it stops being true: an import cycle, the
store importing a layer above it, the client or the worker importing the server, or SQL text
written outside the store and the migrations.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Folder on disk -> the package it installs as (pyproject.toml's package-dir).
PACKAGES = {
    "client": "branchwork",
    "app": "branchwork.app",
    "studio": "branchwork.studio",
    "worker": "branchwork.worker",
}

# What app/store may import from the project: nothing above it. The protocol module is the
# base every layer shares; jsonutil encodes values the way the store writes them.
STORE_MAY_IMPORT = ("branchwork.protocol", "branchwork.app.jsonutil", "branchwork.app.store.sql")

# The console entry dispatches to every part (worker, server); it is the one module above all
# layers, and it imports the server only inside the command that runs it.
CONSOLE_ENTRY = "branchwork.cli"

# Uppercase SQL, the project's convention for statements (prose in docstrings is not checked).
SQL = re.compile(
    r"\b(SELECT\b[\s\S]*\bFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM"
    r"|CREATE\s+(TABLE|INDEX|DATABASE|EXTENSION)|ALTER\s+(TABLE|DATABASE)|DROP\s+(TABLE|DATABASE)"
    r"|(^|[;\n])\s*(UN)?LISTEN\s+\w|(^|[;\n])\s*NOTIFY\s+\w|pg_notify\(|pg_advisory"
    r"|SET\s+(LOCAL\s+)?\w+\s*(=|TO)\s)")

# Where SQL text belongs: the store, and the migrations (alembic/ and its runner).
SQL_HOMES = ("branchwork.app.store", "branchwork.app.migrate")


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    tree: ast.Module
    imports: set[str] = field(default_factory=set)


def _module_name(path: Path) -> tuple[str, bool]:
    rel = path.relative_to(ROOT)
    base = PACKAGES[rel.parts[0]]
    parts = list(rel.with_suffix("").parts[1:])
    is_package = parts[-1:] == ["__init__"]
    if is_package:
        parts = parts[:-1]
    return ".".join([base, *parts]), is_package


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def load_modules() -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for folder in PACKAGES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            name, is_package = _module_name(path)
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            modules[name] = Module(name, path, is_package, tree)
    for mod in modules.values():
        parents = {child: node for node in ast.walk(mod.tree) for child in ast.iter_child_nodes(node)}
        package = mod.name if mod.is_package else mod.name.rpartition(".")[0]
        for node in ast.walk(mod.tree):
            if _type_checking_only(node, parents):
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = node.module or ""
                # ``from pkg import sub`` imports the submodule when there is one.
                targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in modules else origin
                           for a in node.names]
            else:
                continue
            mod.imports.update(t for t in targets if t.startswith("branchwork"))
    return modules


def _resolve(name: str, modules: dict[str, Module]) -> str | None:
    """The project module an import lands on (``branchwork.app.store.tasks.X`` -> its module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for mod in modules.values():
        edges[mod.name] = {t for t in (_resolve(i, modules) for i in mod.imports)
                           if t is not None and t != mod.name}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _strings(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Every string literal but docstrings; an f-string as its text with ``x`` for each field."""
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    inside_fstrings = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
                       for part in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            yield node.lineno, "".join(p.value if isinstance(p, ast.Constant) else "x"
                                       for p in node.values)
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docstrings and id(node) not in inside_fstrings):
            yield node.lineno, node.value


MODULES = load_modules()
EDGES = graph(MODULES)


def test_the_walk_sees_the_project() -> None:
    # The checks below mean nothing if the walk misses the tree or its imports.
    assert {"branchwork", "branchwork.app.main", "branchwork.worker.runtime"} <= set(MODULES)
    assert any(_in(t, "branchwork.app.store") for t in EDGES["branchwork.app.main"]) or any(
        _in(t, "branchwork.app.store") for deps in EDGES.values() for t in deps)


def test_no_import_cycles() -> None:
    assert cycles(EDGES) == []


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_store_imports_nothing_above_it_nor_another_store_module() -> None:
    wrong = {
        name: sorted(t for t in deps if not any(_in(t, ok) for ok in STORE_MAY_IMPORT))
        for name, deps in EDGES.items() if _in(name, "branchwork.app.store")
        and not name.endswith(".sql")
    }
    assert {k: v for k, v in wrong.items() if v} == {}


def test_client_and_worker_do_not_import_the_server() -> None:
    server = ("branchwork.app", "branchwork.studio", "branchwork.migrations")
    wrong = {
        name: sorted(t for t in deps if any(_in(t, s) for s in server))
        for name, deps in EDGES.items()
        if not any(_in(name, s) for s in server) and name != CONSOLE_ENTRY
    }
    assert {k: v for k, v in wrong.items() if v} == {}


def test_no_sql_outside_the_store_and_the_migrations() -> None:
    found = [
        f"{mod.path.relative_to(ROOT)}:{line}: {text.strip()[:60]!r}"
        for mod in MODULES.values()
        if not any(_in(mod.name, home) for home in SQL_HOMES)
        for line, text in _strings(mod.tree) if SQL.search(text)
    ]
    assert found == []


def test_sql_detector_sees_statements_and_not_prose() -> None:
    assert SQL.search("SELECT id FROM tasks WHERE status = 'queued'")
    assert SQL.search("UPDATE tasks SET status = 'failed'")
    assert SQL.search("LISTEN branchwork")
    assert SQL.search("SELECT pg_advisory_lock(1)")
    assert not SQL.search("re-check when no NOTIFY arrives")
    assert not SQL.search("select the rows from the list")
    assert not SQL.search("Update the settings")
