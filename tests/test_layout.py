"""The package's shape: imports point one way, no cycles, and only the modalities know the kinds of data."""

import ast
import os
import subprocess
import sys
from pathlib import Path

from augtrain.modalities import MODALITIES
from conftest import loaded_by, loaded_by_import

PACKAGE = Path(__file__).resolve().parents[1] / "platform" / "augtrain"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(path: Path, top_level_only: bool) -> set[str]:
    """The augtrain modules `path` imports (a `from package import name` counts the submodule if it is one)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("augtrain")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("augtrain"):
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module for a in node.names}
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first search meets (as the path that closes it)."""
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycle_inside_the_package():
    graph = {name: imports(path, top_level_only=True) & set(MODULES) for name, path in MODULES.items()}
    assert len(graph) > 40
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_nothing_but_the_cli_and_the_recipes_import_a_recipe():
    offenders = {
        name: sorted(i for i in imports(path, top_level_only=False) if i.startswith("augtrain.recipes"))
        for name, path in MODULES.items()
        if not name.startswith(("augtrain.recipes", "augtrain.cli"))
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_only_the_modalities_name_a_kind_of_data():
    """Outside modalities/ no code compares (or even spells) a kind: it asks the registry for the modality."""
    kinds = set(MODALITIES)
    assert {"image", "sequence"} <= kinds
    spelled = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}"
        for path in PACKAGE.rglob("*.py")
        if "modalities" not in path.relative_to(PACKAGE).parts
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in kinds
    ]
    assert spelled == []


def test_evaluate_loads_no_training_or_reporting():
    """`augtrain evaluate` scores a bundle in its own process: Ray Train, TensorBoard, the report and MLflow stay out."""
    heavy = ["ray.train", "ray.data", "tensorboardX", "augtrain.artifacts.report", "augtrain.artifacts.tracking", "albumentations"]
    assert loaded_by_import("augtrain.evaluation.evaluate", heavy) == []


def test_the_command_line_imports_what_a_verb_runs_only_when_it_runs():
    """`augtrain --help` answers at once: pyarrow, numpy, pydantic, torch and Ray wait for the verb that uses them."""
    heavy = ["pyarrow", "numpy", "pydantic", "yaml", "torch", "albumentations", "ray", "matplotlib", "sklearn"]
    assert loaded_by_import("augtrain.cli", heavy) == []


def test_an_embedded_ray_starts_while_the_command_s_next_imports_load():
    """`augtrain run` and `tune` import their recipe (and `run` torch._dynamo, which the first optimizer built
    imports) while ray.init waits on the processes it starts; both are done when start_ray returns."""
    start = ("from augtrain.training.runtime import start_ray; start_ray(meanwhile=('sklearn.metrics', 'torch._dynamo'));"
             "import ray; assert ray.is_initialized(); ray.shutdown()")
    assert loaded_by(start, ["sklearn.metrics", "torch._dynamo", "matplotlib"]) == ["sklearn.metrics", "torch._dynamo"]


def test_the_shell_completes_commands_as_typer_s_bash_script_asks():
    """What `augtrain --install-completion`'s script runs at every Tab: the verbs that start with what was typed."""
    env = {**os.environ, "_AUGTRAIN_COMPLETE": "complete_bash", "COMP_WORDS": "augtrain s", "COMP_CWORD": "1"}
    augtrain = Path(sys.executable).with_name("augtrain")
    result = subprocess.run([augtrain], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.split() == ["serve", "sign", "submit", "status", "stop"], result


def test_the_command_line_refuses_every_bad_input_in_one_line():
    """cli.py catches BadInput without importing the modules that raise it."""
    from augtrain.artifacts.signing import BundleError, SignatureError
    from augtrain.config.spec import SpecError
    from augtrain.datasets.sources import SourceError
    from augtrain.datasets.storage import StorageError
    from augtrain.errors import BadInput
    from augtrain.training.plan import PlanError

    refused = (SpecError, SourceError, StorageError, PlanError, BundleError, SignatureError)
    assert all(issubclass(error, BadInput) for error in refused)
