"""The layers hold: pure modules never reach the database, the web and the command line ask
services instead of running queries, listmgr's modules import each other without cycles, and no
module reaches into another's private names.

Read from the source (ast), so a rule broken only inside a function body is caught too."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import listmgr

PACKAGE = Path(listmgr.__file__).resolve().parent

# Pure modules: rules, parsing and rendering. None of them, nor anything they import, opens a
# database session or reaches a service, a process or the web.
PURE = (
    "listmgr.mail",  # and every module under it
    "listmgr.addresses",
    "listmgr.aggregates",
    "listmgr.csvfiles",
    "listmgr.errors",
    "listmgr.fieldvalues",
    "listmgr.importrows",
    "listmgr.jsonin",
    "listmgr.passwords",
    "listmgr.permissions",
    "listmgr.segments",
    "listmgr.segment_words",
    "listmgr.segmentvalues",
    "listmgr.sqljson",
    "listmgr.tokens",
    "listmgr.traces",
    "listmgr.zonetimes",
)
# What a pure module must not import, directly or through other listmgr modules. (listmgr.models
# is allowed: tables and enums are data; segments builds expressions over them.)
STATEFUL = (
    "listmgr.app",
    "listmgr.boot",
    "listmgr.cli",
    "listmgr.db",
    "listmgr.inbound_server",
    "listmgr.queue",
    "listmgr.runtime",
    "listmgr.services",
    "listmgr.textlimits",  # hooks every session's flush
    "listmgr.web",
    "listmgr.workers",
)
# The session machinery, by name: importing any of these is reaching the database.
SESSION_NAMES = {"Session", "sessionmaker", "scoped_session", "session_scope", "create_engine"}
SESSION_MODULES = ("sqlalchemy", "sqlmodel", "listmgr.db")
# Modules that run no SQL of their own: they call services.
NO_SQL = ("listmgr.web", "listmgr.cli")
FORBIDDEN_IN_NO_SQL = ("sqlalchemy", "sqlmodel", "listmgr.db")

# Modules that still break a rule here while they are being moved onto it; each entry leaves
# the list when its module is clean (a test below says which ones are).
KNOWN_PENDING: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Import:
    """One import: the module, the name taken from it (`from m import name`), the name it binds."""

    module: str
    name: str | None
    bound: str
    line: int
    typing_only: bool  # under `if TYPE_CHECKING:`: never runs


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES: dict[str, Path] = {
    _module_name(path): path
    for path in sorted(PACKAGE.rglob("*.py"))
    if "migrations" not in path.relative_to(PACKAGE).parts
}
TREES: dict[str, ast.Module] = {
    module: ast.parse(path.read_text(encoding="utf-8"), str(path))
    for module, path in SOURCES.items()
}


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _type_checking(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, typing_only: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node below `node`, with whether it sits under `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        yield child, typing_only
        yield from _walk(child, typing_only or _type_checking(child))


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if SOURCES[module].name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _imports(module: str) -> list[Import]:
    """What a module imports, anywhere in it (a lazy import inside a function is a dependency
    too); `from package import submodule` names the submodule."""
    found: list[Import] = []
    for node, typing_only in _walk(TREES[module]):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.partition(".")[0]
                target = alias.name if alias.asname else bound
                found.append(Import(target, None, bound, node.lineno, typing_only))
                if not alias.asname and alias.name != target:
                    found.append(Import(alias.name, None, "", node.lineno, typing_only))
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            for alias in node.names:
                bound = alias.asname or alias.name
                if f"{source}.{alias.name}" in SOURCES:
                    target = f"{source}.{alias.name}"
                    found.append(Import(target, None, bound, node.lineno, typing_only))
                else:
                    found.append(Import(source, alias.name, bound, node.lineno, typing_only))
    return found


IMPORTS: dict[str, list[Import]] = {module: _imports(module) for module in SOURCES}


def _ours(name: str) -> str | None:
    """The listmgr module an import names (the nearest enclosing one that exists)."""
    while name and name not in SOURCES:
        name = name.rpartition(".")[0]
    return name or None


def _graph() -> dict[str, set[str]]:
    """Which listmgr modules each one imports (typing-only imports aside)."""
    graph: dict[str, set[str]] = {}
    for module, found in IMPORTS.items():
        targets = {_ours(imp.module) for imp in found if not imp.typing_only}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


GRAPH = _graph()


def _closure(module: str) -> dict[str, list[str]]:
    """Every listmgr module a module imports, directly or not, with one path to each."""
    paths: dict[str, list[str]] = {module: [module]}
    todo = [module]
    while todo:
        current = todo.pop()
        for target in sorted(GRAPH[current]):
            if target not in paths:
                paths[target] = [*paths[current], target]
                todo.append(target)
    return paths


def _session_imports(module: str) -> list[str]:
    return [
        f"line {imp.line}: {imp.module}{'.' + imp.name if imp.name else ''}"
        for imp in IMPORTS[module]
        if _within(imp.module, SESSION_MODULES)
        and (imp.name in SESSION_NAMES or imp.module.endswith(".session"))
    ]


def _db_handles(module: str) -> list[str]:
    """Uses of a database handle: `rt.db.session()`, `self.db.engine`, `current_runtime().db`."""
    return [
        f"line {node.lineno}: .db.{node.attr}"
        for node, _ in _walk(TREES[module])
        if isinstance(node, ast.Attribute)
        and node.attr in ("session", "engine", "upgrade")
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "db"
    ]


def _tables_named(module: str) -> list[str]:
    models = importlib.import_module("listmgr.models")
    return [
        f"line {imp.line}: listmgr.models.{imp.name}"
        for imp in IMPORTS[module]
        if imp.module == "listmgr.models"
        and not imp.typing_only  # a table named in an annotation runs no SQL
        and imp.name is not None
        and hasattr(getattr(models, imp.name, None), "__table__")
    ]


# -- the rules: each maps a module to what it does wrong -------------------------------------
def impure() -> dict[str, list[str]]:
    """Pure modules that reach the database, a service, a process or the web (with the path)."""
    found: dict[str, list[str]] = {}
    for module in (m for m in SOURCES if _within(m, PURE)):
        problems = []
        for target, path in _closure(module).items():
            via = " -> ".join(path)
            if _within(target, STATEFUL):
                problems.append(via)
            elif target != "listmgr.models":  # tables may name a session in a helper's type
                problems += [f"{via}: {p}" for p in _session_imports(target) + _db_handles(target)]
        found[module] = problems
    return found


def with_sql() -> dict[str, list[str]]:
    """Web and command-line modules that import SQL machinery, a table, or use a database
    handle (enums and constants of listmgr.models are fine)."""
    found: dict[str, list[str]] = {}
    for module in (m for m in SOURCES if _within(m, NO_SQL)):
        found[module] = [
            f"line {imp.line}: {imp.module}"
            for imp in IMPORTS[module]
            if _within(imp.module, FORBIDDEN_IN_NO_SQL)
        ]
        found[module] = list(
            dict.fromkeys(found[module] + _tables_named(module) + _db_handles(module))
        )
    # `listmgr db upgrade` applies the migrations: that handle is the command itself.
    found["listmgr.cli.serve"] = [
        p for p in found["listmgr.cli.serve"] if not p.endswith(".db.upgrade")
    ]
    return found


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or not (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def in_cycles() -> dict[str, list[str]]:
    """Modules in an import cycle, with the cycle."""
    found: dict[str, list[str]] = {module: [] for module in SOURCES}
    for group in cycles(GRAPH):
        for module in group:
            found[module].append(" <-> ".join(group))
    return found


def private_reach() -> dict[str, list[str]]:
    """Modules that use another listmgr module's `_name` (imported, or as `module._name`)."""
    found: dict[str, list[str]] = {}
    for module in SOURCES:
        problems = []
        modules_bound: dict[str, str] = {}
        for imp in IMPORTS[module]:
            if _ours(imp.module) is None:
                continue
            taken = [*imp.module.split(".")[1:], *([imp.name] if imp.name else [])]
            if any(p.startswith("_") and not p.startswith("__") for p in taken):
                problems.append(f"line {imp.line}: {imp.module} {imp.name or ''}".rstrip())
            if imp.name is None and imp.bound:
                modules_bound[imp.bound] = imp.module
        for node, _ in _walk(TREES[module]):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id in modules_bound
            ):
                problems.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        found[module] = problems
    return found


RULES = (impure, with_sql, in_cycles, private_reach)


def _broken(found: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """What a rule finds outside the known pending modules."""
    return {m: problems for m, problems in found.items() if problems and m not in KNOWN_PENDING}


# -- the tests ---------------------------------------------------------------------------------
def test_the_lists_name_modules_that_exist() -> None:
    for module in (*PURE, *STATEFUL, *NO_SQL, *KNOWN_PENDING):
        assert module in SOURCES, module
    assert len([m for m in SOURCES if _within(m, PURE)]) > 20


def test_pure_modules_never_reach_the_database() -> None:
    assert not _broken(impure()), _broken(impure())


def test_web_and_cli_run_no_sql_of_their_own() -> None:
    assert not _broken(with_sql()), _broken(with_sql())


def test_no_import_cycles() -> None:
    """No cycle among listmgr's modules, counting imports inside functions too: a lazy import
    is still a dependency (a package importing its own modules from __init__ is not one)."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    # A cycle through a pending module is that module's to break.
    found = [group for group in cycles(GRAPH) if not set(group) & KNOWN_PENDING]
    assert not found, found


def test_no_private_names_across_modules() -> None:
    """`_name` is its module's own: others use what it makes public."""
    assert not _broken(private_reach()), _broken(private_reach())


def test_the_rules_catch_what_they_are_for() -> None:
    assert "line 1: sqlalchemy" in _probe("from sqlalchemy import select\n", with_sql)
    assert _probe("def f(rt):\n    return rt.db.session()\n", with_sql)
    assert _probe("from listmgr.models import User\n", with_sql)
    assert not _probe("from listmgr.models import MAX_ID, Role\n", with_sql)
    assert _probe("def f():\n    from listmgr.services import lists\n", impure, "listmgr.tokens")
    assert _probe("from listmgr.mail.budget import _x\n", private_reach)
    assert _probe("from listmgr.mail import budget\nbudget._x\n", private_reach)
    assert not _probe("from listmgr.mail import budget\nbudget.x\n", private_reach)


def _probe(source: str, rule: Callable[[], dict[str, list[str]]], module: str = "") -> list[str]:
    """What `rule` finds in a module of this source (in place of a real one, for the call)."""
    module = module or ("listmgr.web.hooks" if rule is with_sql else "listmgr.cli.base")
    saved = TREES[module], IMPORTS[module], GRAPH[module]
    try:
        TREES[module] = ast.parse(source)
        IMPORTS[module] = _imports(module)
        GRAPH[module] = {t for i in IMPORTS[module] if (t := _ours(i.module)) and t != module}
        return rule()[module]
    finally:
        TREES[module], IMPORTS[module], GRAPH[module] = saved


def test_every_known_pending_module_still_breaks_a_rule() -> None:
    """A module that keeps every rule leaves KNOWN_PENDING (so the list only ever shrinks)."""
    offenders = {m for rule in RULES for m, problems in rule().items() if problems}
    assert offenders >= KNOWN_PENDING, sorted(KNOWN_PENDING - offenders)
