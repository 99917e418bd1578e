"""Every docstring example and the README's Python example run as written."""
import doctest
import inspect
import importlib
import pkgutil
import re
import warnings
from pathlib import Path

import pytest

import randvis

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(m.name for m in pkgutil.walk_packages(randvis.__path__, "randvis.")
                 if not m.name.endswith("__main__"))


#: modules whose behaviour is a whole experiment run: tests/test_experiments.py runs
#: each one end to end instead of a docstring example
WITHOUT_EXAMPLES = {f"randvis.experiments.{n}" for n in (
    "adversarial", "class_sensitivity", "depth", "local_connections", "max_pooling", "n_filters",
    "partly_trained", "theory_curves", "trained_maps")}


@pytest.mark.parametrize("name", [m for m in MODULES if m not in WITHOUT_EXAMPLES])
def test_docstring_examples(name):
    """Each module's examples run as written, every warning an error."""
    module = importlib.import_module(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert res.attempted > 0, f"{name} has no docstring example"
    assert res.failed == 0, f"{res.failed} failing example(s) in {name}"


def test_modules_without_examples_are_run_by_the_experiment_tests():
    text = (ROOT / "tests" / "test_experiments.py").read_text()
    assert WITHOUT_EXAMPLES <= set(MODULES)
    for name in WITHOUT_EXAMPLES:
        assert f'"{name.rsplit(".", 1)[1]}"' in text, f"{name} is not run by tests/test_experiments.py"


def test_readme_python_examples(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_every_public_function_has_an_example():
    missing = []
    for name in ("randvis.theory", "randvis.stats", "randvis.methods", "randvis.models",
                 "randvis.montecarlo", "randvis.images"):
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            if inspect.isfunction(obj) and (obj.__doc__ or "").count(">>>") == 0:
                missing.append(f"{name}.{attr}")
    assert not missing, missing
