"""The import graph of ``src/speakstream``: no upward arrow between layers, no cycle.

Layers, lowest first (a module may import only its own layer and those below). Every
import of ``speakstream`` counts, also inside functions; only imports under
``if TYPE_CHECKING:`` are left out (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

LAYERS: dict[str, int] = {
    "speakstream.version": 0,
    "speakstream.segmenter": 0,
    "speakstream.protocol": 1,
    "speakstream.audio": 2,
    "speakstream.engines": 3,
    "speakstream.scheduler": 4,
    "speakstream.synthesis": 5,
    "speakstream.config": 5,
    "speakstream.server": 6,
    "speakstream.client": 6,
    "speakstream.bench": 7,
    "speakstream.cli": 8,
    "speakstream.__main__": 8,
    "speakstream": 8,  # the package root: its face to users
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> int:
    while module not in LAYERS:
        module = module.rpartition(".")[0]
        assert module, "every module of the package has a layer"
    return LAYERS[module]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, known: set[str]) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("speakstream"))
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").startswith("speakstream")
        ):
            for alias in node.names:  # `from pkg import submodule` names a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else str(node.module))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in (SRC / "speakstream").rglob("*.py")}
    known = set(files)
    return {
        name: {m for m in _imports(ast.parse(path.read_text()), known) if m != name}
        for name, path in files.items()
    }


def test_no_upward_imports() -> None:
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in _graph().items()
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def test_no_import_cycles() -> None:
    graph = _graph()
    # A package's __init__ is imported with any of its submodules: that edge is implied,
    # not a cycle by itself, so only explicit imports are followed.
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_the_protocol_needs_only_the_standard_library_and_the_segmenter() -> None:
    allowed = {"speakstream.segmenter"}
    for module, targets in _graph().items():
        if module.startswith("speakstream.protocol"):
            outside = {t for t in targets if not t.startswith("speakstream.protocol")}
            assert outside <= allowed, module


def test_the_server_loads_ffmpeg_only_when_a_feature_needs_it() -> None:
    """PyAV (FFmpeg) is 18 MB of resident memory: the compressed encodings and voice
    uploads import it when first used, so an idle server does not hold it."""
    import subprocess
    import sys

    probe = "import sys, speakstream.server.app, speakstream.cli; print('av' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "False"
