"""Start-up: the modules that Ray's processes load to unpickle augtrain's functions stay light.

Every Train run starts Ray Data coordinators that import augtrain.stream, and every Tune trial a
process that imports augtrain.trial; each heavy import there is seconds of every run's start-up.
"""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module, heavy", [
    ("augtrain.spec", ["torch", "albumentations"]),  # every process that unpickles a job
    ("augtrain.stream", ["torch", "albumentations"]),  # Ray Data's coordinators; val and test readers
    ("augtrain.trial", ["matplotlib", "sklearn", "albumentations"]),  # each Tune trial's process
])
def test_module_imports_without_heavy_dependencies(module, heavy):
    check = f"import sys, {module}; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == [], f"importing {module} loads {loaded}"
