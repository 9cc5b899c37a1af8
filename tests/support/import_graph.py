"""The import graph of the source tree, read from the AST (nothing is imported), and the layer
rules of docs/architecture.md checked over it. `tests/unit/test_architecture.py` runs the
checks on the repository and on small planted trees, so each rule is shown to fail.

An edge is every way one module reaches another:
- `import x` / `from x import y` statements, at module level or deferred inside a function;
- imports under `if TYPE_CHECKING:` (kind `type`: they count for the layer rules, not for
  cycles, since they never run);
- import strings: any string constant naming a module of ours (`"engines.x.y"` or
  `"engines.x.y:attr"`, as `importlib.import_module` or a manifest's `torch_factory` use them),
  so that loading by name cannot hide an edge (a `-m MODULE` argument of a command line
  starts another process and is not one);
- the `torch_factory` of each bundled engine manifest, which the runtime's torch backend loads.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PACKAGES = ("stream", "engines")
Kind = Literal["static", "deferred", "type", "string"]
_MODULE_STRING = re.compile(r"^(?:stream|engines)(?:\.[A-Za-z_]\w*)+(?::[A-Za-z_]\w*)?$")
# Modules of the lower layer that the runtime and the service share with the lab.
SHARED = ("engines.window", "engines.labels", "engines.events", "engines.config", "engines.errors")
RUNTIME = "engines.runtime"
LAB = "engines.lab"
TORCH_LOADER = "engines.runtime.backends.torch_backend"


@dataclass(frozen=True, slots=True)
class Edge:
    """`source` imports `target` (both dotted module names) at `line`, in the way `kind` says."""

    source: str
    target: str
    line: int
    kind: Kind


def module_name(root: Path, path: Path) -> str:
    """Dotted name of the module in `path` (a package's `__init__.py` is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files(root: Path, packages: Iterable[str] = PACKAGES) -> Iterator[Path]:
    """Every Python file of `packages` under `root`."""
    for package in packages:
        yield from sorted((root / package).rglob("*.py"))


def _resolve(known: set[str], name: str) -> str | None:
    """The longest known module that `name` (a module, or a module plus attribute) names."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


class _Visitor(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, known: set[str]) -> None:
        self.module, self.is_package, self.known = module, is_package, known
        self.edges: list[Edge] = []
        self._depth = 0  # inside a function: a deferred import
        self._type_only = 0  # inside `if TYPE_CHECKING:`

    def _add(self, name: str, line: int, kind: Kind | None = None) -> None:
        target = _resolve(self.known, name)
        if target is None or target == self.module:
            return
        if kind is None:
            kind = "type" if self._type_only else ("deferred" if self._depth else "static")
        self.edges.append(Edge(self.module, target, line, kind))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            package = self.module.split(".")
            if not self.is_package:
                package = package[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, *([base] if base else [])])
        for alias in node.names:
            self._add(f"{base}.{alias.name}" if base else alias.name, node.lineno)

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        type_checking = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        )
        if not type_checking:
            self.generic_visit(node)
            return
        self._type_only += 1
        for child in node.body:
            self.visit(child)
        self._type_only -= 1
        for child in node.orelse:
            self.visit(child)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and _MODULE_STRING.match(node.value):
            self._add(node.value.partition(":")[0], node.lineno, "string")

    def visit_List(self, node: ast.List) -> None:
        self._visit_argv(node.elts)

    def visit_Tuple(self, node: ast.Tuple) -> None:
        self._visit_argv(node.elts)

    def _visit_argv(self, elements: list[ast.expr]) -> None:
        """`[python, "-m", "stream.cli", ...]` starts another process: not an import."""
        after_m = False
        for element in elements:
            is_m = isinstance(element, ast.Constant) and element.value == "-m"
            if not after_m:
                self.visit(element)
            after_m = is_m


def import_graph(root: Path, packages: Iterable[str] = PACKAGES) -> list[Edge]:
    """Every edge between modules of `packages` under `root` (see the module docstring)."""
    files = list(source_files(root, packages))
    known = {module_name(root, f) for f in files}
    edges: list[Edge] = []
    for path in files:
        module = module_name(root, path)
        visitor = _Visitor(module, path.name == "__init__.py", known)
        visitor.visit(ast.parse(path.read_text(), filename=str(path)))
        edges.extend(visitor.edges)
    for manifest in sorted(root.glob("engines/bundled/*/engine.toml")):
        factory = tomllib.loads(manifest.read_text()).get("engine", {}).get("torch_factory")
        target = _resolve(known, str(factory).partition(":")[0]) if factory else None
        if target is not None:
            edges.append(Edge(TORCH_LOADER, target, 0, "string"))
    return edges


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layer_violations(edges: Iterable[Edge]) -> list[Edge]:
    """`engines` (the lower layer) importing `stream` in any way."""
    return [e for e in edges if _within(e.source, "engines") and _within(e.target, "stream")]


def lab_from_runtime(edges: Iterable[Edge]) -> list[Edge]:
    """The runtime (or the modules it shares with the service) importing the lab."""
    lower = (RUNTIME, *SHARED)
    return [e for e in edges if any(_within(e.source, p) for p in lower) and _within(e.target, LAB)]


def closure(edges: Iterable[Edge], start: str) -> dict[str, list[str]]:
    """Modules reachable from `start` over edges that run (not `type`), each with a path."""
    out: dict[str, list[str]] = {}
    for e in edges:
        if e.kind != "type":
            out.setdefault(e.source, []).append(e.target)
    paths = {start: [start]}
    todo = [start]
    while todo:
        module = todo.pop()
        for target in out.get(module, []):
            if target not in paths:
                paths[target] = [*paths[module], target]
                todo.append(target)
    return paths


def lab_in_closure(edges: Iterable[Edge], start: str) -> list[list[str]]:
    """Import paths from `start` into the lab (empty when `start` never reaches it)."""
    return [path for module, path in closure(edges, start).items() if _within(module, LAB)]


def package_of(module: str, packages: set[str]) -> str:
    """The unit of the cycle check: the subpackage a module lives in (`stream.ingest`,
    `engines.runtime`), or the module itself when it sits at the top (`stream.service`)."""
    parts = module.split(".")
    if len(parts) >= 2 and ".".join(parts[:2]) in packages:
        return ".".join(parts[:2])
    return module


def package_cycles(edges: Iterable[Edge], packages: set[str]) -> list[list[str]]:
    """Strongly connected groups of two or more packages over edges that run (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        if e.kind == "type":
            continue
        a, b = package_of(e.source, packages), package_of(e.target, packages)
        if a != b:
            graph.setdefault(a, set()).add(b)
            graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
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


def subpackages(root: Path, packages: Iterable[str] = PACKAGES) -> set[str]:
    """Dotted names of the second-level packages (`stream.ingest`, `engines.lab`, ...)."""
    return {
        f"{package}.{init.parent.name}"
        for package in packages
        for init in (root / package).glob("*/__init__.py")
    }
