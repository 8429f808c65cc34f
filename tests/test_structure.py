"""The library's structure (the "models as the exporters write them" issue, item 1):

* no library module imports the command line (``paramverify.cli``): commands build on
  the library, never the other way round;
* no import circles between modules (module-level imports, ``TYPE_CHECKING`` blocks
  excluded; an import inside a function is a deliberate late binding, also excluded);
* no module of the library, the encoders, the docs generators or the benchmarks is longer
  than 600 lines.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("paramverify", "encoders")
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _module_level_imports(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def resolve(node: ast.ImportFrom) -> list[str]:
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        targets = [f"{base}.{a.name}" for a in node.names]
        return [t if t in known else base for t in targets]

    def visit(stmts: list[ast.stmt]) -> None:
        for st in stmts:
            if isinstance(st, ast.Import):
                found.update(a.name for a in st.names)
            elif isinstance(st, ast.ImportFrom):
                found.update(resolve(st))
            elif isinstance(st, ast.If):
                test = st.test
                if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
                    visit(st.orelse)
                    continue
                visit(st.body)
                visit(st.orelse)
            elif isinstance(st, ast.Try):
                visit(st.body)
                for h in st.handlers:
                    visit(h.body)
    visit(tree.body)
    return {m for m in found if m in known and m != name}


def test_no_import_circles() -> None:
    mods = _modules()
    known = set(mods)
    graph = {m: _module_level_imports(m, p, known) for m, p in mods.items()}
    # a package's __init__ importing its own submodules is not a circle of modules
    for m in graph:
        graph[m] = {d for d in graph[m] if not d.startswith(m + ".") and not m.startswith(d + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def dfs(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                dfs(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m)
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_importing_the_library_never_imports_the_cli() -> None:
    mods = [m for m in _modules() if m not in ("paramverify.cli", "paramverify.__main__")
            and not m.endswith(".cli")]
    code = ("import importlib, sys\n"
            f"for m in {mods!r}:\n"
            "    try:\n"
            "        importlib.import_module(m)\n"
            "    except ImportError:\n"  # an optional backend (dReal, ART) that is not installed
            "        pass\n"
            "print('paramverify.cli' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("folder", [*PACKAGES, "docs", "benchmarks"])
def test_no_module_over_600_lines(folder: str) -> None:
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / folder).rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"
