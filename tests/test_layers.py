"""The package's layers import one way: each module imports only from its own layer and the layers below.

The flow, lowest first: names and errors -> the run store -> data (sources, randomization,
preprocessing, augmentation) -> models -> a run's settings (config) -> the engine -> complexity measures -> the trainers (which take a completed run's
measures) -> report building blocks (runs as reports see them, sections, figures) -> experiments (sweeps,
executors, presets with their report sections, the demo) -> the report, which gathers the presets' sections
-> theory -> the command line.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "rethinkgen"

# (layer, module prefixes), lowest first; a module belongs to the layer of its longest matching prefix
LAYERS = [
    ("names", ["rethinkgen", "rethinkgen.errors", "rethinkgen.checks", "rethinkgen.choices", "rethinkgen.outcome",
               "rethinkgen.settings_file", "rethinkgen.registry"]),
    ("store", ["rethinkgen.store"]),
    ("data", ["rethinkgen.data"]),
    ("models", ["rethinkgen.models"]),
    ("config", ["rethinkgen.config"]),
    ("engine", ["rethinkgen.engine"]),
    ("measures", ["rethinkgen.measures"]),
    ("trainers", ["rethinkgen.engine.trainer", "rethinkgen.engine.ensemble"]),
    ("report blocks", ["rethinkgen.report"]),
    ("experiments", ["rethinkgen.experiments"]),
    ("report", ["rethinkgen.report.document"]),
    ("theory", ["rethinkgen.theory"]),
    ("cli", ["rethinkgen.cli", "rethinkgen.__main__"]),
]


# the one import against the flow, inside a function: deciding amp=auto looks for a CUDA GPU (torch), which
# only a run id needs; at module level config stays free of torch
UPWARD = {("rethinkgen.config", "rethinkgen.engine.speedups")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    """The rank of ``module``'s layer (its longest matching prefix)."""
    best, rank = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    assert rank is not None, f"{module} belongs to no layer"
    return rank


def imports(path: Path, top_level_only: bool) -> set[str]:
    """The rethinkgen modules ``path`` imports (``from rethinkgen.x import y`` counts y when it is a module)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("rethinkgen"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rethinkgen"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = any((SRC / candidate.replace(".", "/")).with_suffix(suffix).exists()
                                for suffix in (".py",)) or (SRC / candidate.replace(".", "/")).is_dir()
                found.add(candidate if is_module else node.module)
    return found


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_layer(module):
    mine = layer_of(module)
    higher = sorted(other for other in imports(MODULES[module], top_level_only=False)
                    if layer_of(other) > mine and (module, other) not in UPWARD)
    assert not higher, f"{module} ({LAYERS[mine][0]}) imports a higher layer: {higher}"


def test_no_import_circle():
    """No circle among module-level imports. A registry package importing its own modules at its end, to
    register them (``models``, ``measures``), is not counted: those modules import the package, never the
    other way round for anything they need."""
    graph = {module: {other for other in imports(path, top_level_only=True)
                      if other in MODULES and other != module and not other.startswith(module + ".")}
             for module, path in MODULES.items()}
    done: set[str] = set()

    def visit(module, trail):
        for other in sorted(graph[module]):
            assert other not in trail, f"import circle: {' -> '.join(trail[trail.index(other):] + [other])}"
            if other not in done:
                visit(other, trail + [other])
        done.add(module)

    for module in sorted(graph):
        visit(module, [module])


def test_imports_inside_functions_say_why():
    """An import inside a function is for an optional extra or for a light start-up, and says which."""
    unexplained = []
    for module, path in MODULES.items():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        here = lines[inner.lineno - 1]
                        before = lines[inner.lineno - 2].strip()
                        if "#" not in here and not before.startswith("#") and not module.startswith("rethinkgen.cli"):
                            unexplained.append(f"{module}:{inner.lineno}")
    assert not unexplained, f"imports inside functions without a comment saying why: {unexplained}"


@pytest.mark.parametrize("module", ["rethinkgen.config", "rethinkgen.choices", "rethinkgen.registry"])
def test_plain_data_modules_do_not_import_torch(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert result.stdout.strip() == "False"
