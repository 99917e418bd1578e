"""Every docstring example and the README's Python example run as written."""
import doctest
import inspect
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import randvis

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(m.name for m in pkgutil.walk_packages(randvis.__path__, "randvis.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    res = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert res.failed == 0, f"{res.failed} failing example(s) in {name}"


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
