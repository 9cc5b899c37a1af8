"""The layer rules of docs/architecture.md, checked on the source tree (AST, nothing imported).

- `engines/` never imports `stream/`;
- the runtime (`engines/runtime/` and the shared lower modules) never imports the lab;
- `scenestream serve` never reaches the lab (its whole import closure, deferred imports and
  import strings included);
- no import cycle between packages;
- and each rule is shown to fail on a planted violation.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.import_graph import (
    Edge,
    import_graph,
    lab_from_runtime,
    lab_in_closure,
    layer_violations,
    package_cycles,
    subpackages,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SERVE = "stream.commands.serve"


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return import_graph(ROOT)


def _where(found: list[Edge]) -> list[str]:
    return [f"{e.source}:{e.line} -> {e.target} ({e.kind})" for e in found]


def test_engines_never_import_stream(edges: list[Edge]) -> None:
    assert _where(layer_violations(edges)) == []


def test_the_runtime_never_imports_the_lab(edges: list[Edge]) -> None:
    assert _where(lab_from_runtime(edges)) == []


def test_serve_never_reaches_the_lab(edges: list[Edge]) -> None:
    assert lab_in_closure(edges, SERVE) == []
    # the synthetic camera may: it is what `send --scenario` plays
    assert lab_in_closure(edges, "stream.commands.send") != []


def test_no_import_cycle_between_packages(edges: list[Edge]) -> None:
    assert package_cycles(edges, subpackages(ROOT)) == []


def test_the_graph_sees_every_kind_of_edge(edges: list[Edge]) -> None:
    kinds = {(e.source, e.target): e.kind for e in edges}
    assert kinds[("stream.service", "engines.runtime.loader")] == "static"
    assert kinds[("stream.cli", "stream.commands.serve")] == "deferred"
    torch_factories = {e.target for e in edges if e.kind == "string"}
    assert "engines.runtime.nets.avfusion" in torch_factories  # the bundled manifest's factory


# -- each rule fails on a planted violation --------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in {p.parent for p in tmp_path.rglob("*.py")}:
        (package / "__init__.py").touch()
    return tmp_path


def test_planted_engines_to_stream_import_is_found(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "stream/metrics.py": "",
        "engines/runtime/engine.py": "def f():\n    from stream.metrics import X\n",
        "engines/window.py": "import importlib\nM = importlib.import_module('stream.metrics')\n",
    })  # fmt: skip
    found = layer_violations(import_graph(root))
    assert {(e.source, e.target, e.kind) for e in found} == {
        ("engines.runtime.engine", "stream.metrics", "deferred"),
        ("engines.window", "stream.metrics", "string"),
    }


def test_planted_lab_import_from_the_runtime_is_found(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "engines/lab/scenes/base.py": "",
        "engines/runtime/nets/net.py": "from engines.lab.scenes.base import LABELS\n",
        "engines/lab/training/data.py": "from engines.runtime.nets import net\n",
    })  # fmt: skip
    found = lab_from_runtime(import_graph(root))
    assert [(e.source, e.target) for e in found] == [
        ("engines.runtime.nets.net", "engines.lab.scenes.base")
    ]


def test_planted_lab_in_the_serve_closure_is_found(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "stream/commands/serve.py": "from stream import service\n",
        "stream/service.py": "def start():\n    from stream.benchmark import clip\n",
        "stream/benchmark/clip.py": "FACTORY = 'engines.lab.scenes.sync:SyncScene'\n",
        "engines/lab/scenes/sync.py": "",
    })  # fmt: skip
    paths = lab_in_closure(import_graph(root), SERVE)
    assert paths == [[
        "stream.commands.serve", "stream.service", "stream.benchmark.clip",
        "engines.lab.scenes.sync",
    ]]  # fmt: skip


def test_planted_package_cycle_is_found(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "stream/http/whip.py": "from stream.ingest.session import S\n",
        "stream/ingest/session.py": "def f():\n    from stream.http.problems import P\n",
        "stream/http/problems.py": "",
        "stream/publish/status.py": "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from stream.ingest.session import S\n",
    })  # fmt: skip
    cycles = package_cycles(import_graph(root), subpackages(root))
    assert cycles == [["stream.http", "stream.ingest"]]  # type-only imports never cycle
