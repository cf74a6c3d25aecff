"""The floors of the package hold: no import runs up a floor, no import cycle, no private name
imported from another module (docs/architecture.md, "Floors"). Read from the source with ``ast``,
lazy imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "langchain_attention_buckets"
NAME = PACKAGE.name

# Each floor imports only from its own floor and the ones below (docs/architecture.md).
FLOORS = {
    "progress": 0, "engine": 0,
    "formats": 1, "text": 1,
    "constrain": 2,
    "chat": 3, "chat_model": 3,
    "retrieval": 4, "serve": 4, "bench": 4,
    "cli": 5, "__init__": 5,
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str], int, bool]]:
    """(absolute module, imported names, line, at module level) for each import from the package."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == NAME or target.startswith(NAME + "."):
                out.append((target, [a.name for a in node.names], node.lineno, id(node) in top))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith(NAME + "."):
                    out.append((a.name, [], node.lineno, id(node) in top))
    return out


def _floor(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    assert key in FLOORS, f"{module}: a module outside the floors of docs/architecture.md"
    return FLOORS[key]


FILES = sorted(PACKAGE.rglob("*.py"))


def _is_module(name: str) -> bool:
    return (PACKAGE.parent / Path(*name.split("."))).with_suffix(".py").exists() or (
        PACKAGE.parent / Path(*name.split(".")) / "__init__.py").exists()


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_up_a_floor(path):
    here = _module(path)
    for target, names, line, _ in _imports(path):
        targets = [f"{target}.{n}" for n in names if _is_module(f"{target}.{n}")] or [target]
        for t in targets:
            assert _floor(t) <= _floor(here), f"{here}:{line} imports {t}, a floor above it"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_name_is_imported_from_another_module(path):
    here = _module(path)
    for target, names, line, _ in _imports(path):
        private = [n for n in names if n.startswith("_") and target != here]
        assert not private, f"{here}:{line} imports {private} from {target}"


def test_no_import_cycle_at_module_level():
    graph: dict[str, set[str]] = {}
    for path in FILES:
        here = _module(path)
        edges = graph.setdefault(here, set())
        for target, names, _, top in _imports(path):
            if not top:
                continue
            mods = [f"{target}.{n}" for n in names if _is_module(f"{target}.{n}")] or [target]
            edges.update(m for m in mods if m != here)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (a path that comes back to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, [*path, nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_importing_the_package_leaves_the_heavy_optional_modules_unloaded():
    # every process (the CLI, the server, a bench step) pays for what `import` loads: torch's
    # compiler (torch._dynamo, ~2 s) and transformers' modeling code load where they are used
    import subprocess
    import sys

    code = ("import sys, langchain_attention_buckets.cli; "
            "print(sorted(m for m in ('torch._dynamo', 'transformers.modeling_utils') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout
