"""Write the API reference pages from the package itself, then check them.

One page per public module of randvis (modules and packages whose dotted name has
no part starting with ``_``). A module's public names are its ``__all__``, or, for
a module without one, the functions and classes it defines whose names do not
start with ``_``. Each object is documented once, in its home module (the module
that defines it, or the first public module that lists it); modules that re-export
it link to that entry. When the build's environment is complete, every public
name of every module must have an entry in the Python domain: a missing one is a
warning, hence an error under ``-W``.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

from sphinx.util import logging

LOG = logging.getLogger(__name__)

#: sections of the API index: (title, module prefixes); a module goes to the
#: first section with a matching prefix, and to "Everything else" otherwise
SECTIONS = (
    ("Networks and the three rules", ("randvis", "randvis.layers", "randvis.rules",
                                      "randvis.network", "randvis.methods", "randvis.models")),
    ("Theory, simulation and statistics", ("randvis.theory", "randvis.montecarlo",
                                           "randvis.stats", "randvis.claims",
                                           "randvis.exercises")),
    ("Trained networks and weight files", ("randvis.efficientnet", "randvis.tumorvgg",
                                           "randvis.weights", "randvis.onnxfile",
                                           "randvis.onnxgraph", "randvis.torchfile",
                                           "randvis.safeio")),
    ("Images, display and attacks", ("randvis.images", "randvis.plotting", "randvis.attacks")),
    ("Kernels", ("randvis.kernels",)),
    ("Experiments, corpora and the command line", ("randvis.experiments", "randvis.reproduce",
                                                   "randvis.corpus", "randvis.cluster",
                                                   "randvis.cli", "randvis.visualize_cli",
                                                   "randvis.limits")),
)


def public_modules(package="randvis"):
    """Dotted names of the public modules of ``package``, the package first."""
    pkg = importlib.import_module(package)
    names = [m.name for m in pkgutil.walk_packages(pkg.__path__, package + ".", onerror=lambda name: None)]
    keep = [n for n in names if not any(part.startswith("_") for part in n.split("."))]
    return [package] + sorted(keep)


def public_names(module):
    """The names a module offers: ``__all__`` or its own public functions and classes."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [n for n, obj in vars(module).items()
            if not n.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and getattr(obj, "__module__", None) == module.__name__]


def _kind(obj):
    if inspect.isclass(obj):
        return "class"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj) or callable(obj) and hasattr(obj, "py_func"):
        return "function"
    return "data"


def plan(package="randvis"):
    """``{module: [(name, kind, home)]}``: where each public object is documented.

    A function or class lives in the module that defines it when that module is
    public and lists it; otherwise, like any other object, in the first module
    that lists it, plain modules before packages and deeper modules first.
    Immutable constants (numbers, strings, tuples) are documented where listed.
    """
    loaded = {}
    for m in public_modules(package):
        try:
            loaded[m] = importlib.import_module(m)
        except ImportError as e:  # an optional dependency: say which, and go on
            LOG.warning("API reference: cannot import %s (%s); install the docs extra", m, e,
                        type="apigen")
    modules = list(loaded)
    listed = {m: public_names(loaded[m]) for m in modules}
    order = sorted(modules, key=lambda m: (hasattr(loaded[m], "__path__"), -m.count("."), m))
    homes = {}
    for m in order:
        for name in listed[m]:
            obj = getattr(loaded[m], name)
            if _kind(obj) != "data" and getattr(obj, "__module__", None) == m:
                homes[id(obj)] = f"{m}.{name}"
    out = {}
    for m in order:
        for name in listed[m]:
            obj = getattr(loaded[m], name)
            kind = _kind(obj)
            key = (m, name) if isinstance(obj, (int, float, str, tuple, frozenset)) else id(obj)
            homes.setdefault(key, f"{m}.{name}")
            out.setdefault(m, []).append((name, kind, homes[key]))
    return {m: out.get(m, []) for m in modules}


def _module_page(module, entries):
    mod = importlib.import_module(module)
    lines = [f"{module}", "=" * len(module), "",
             f".. automodule:: {module}", "   :no-members:", ""]
    own = [(n, k) for n, k, home in entries if home == f"{module}.{n}"]
    other = [(n, home) for n, k, home in entries if home != f"{module}.{n}"]
    directive = {"class": "autoclass", "function": "autofunction", "data": "autodata"}
    for name, kind in own:
        lines += [f".. {directive[kind]}:: {module}.{name}"]
        if kind == "class":
            lines += ["   :members:"]
        if kind == "data":
            lines += ["   :annotation:"]
        lines += [""]
    if other:
        lines += [".. rubric:: Also available here", ""]
        for name, home in other:
            lines += [f"- ``{module}.{name}``: :py:obj:`{home}`"]
        lines += [""]
    del mod
    return "\n".join(lines)


def _index_page(modules):
    lines = ["API reference", "=============", "",
             "Every public module of randvis, with each public function and class and its",
             "runnable Examples (the test suite runs them). The ``[source]`` link beside an",
             "entry shows the lines that implement it.", ""]
    placed = set()
    for title, prefixes in SECTIONS + (("Everything else", ()),):
        mods = [m for m in modules if m not in placed
                and (not prefixes or any(m == p or m.startswith(p + ".") for p in prefixes))]
        if not mods:
            continue
        placed.update(mods)
        lines += [title, "-" * len(title), "", ".. toctree::", "   :maxdepth: 1", ""]
        lines += [f"   {m}" for m in mods] + [""]
    return "\n".join(lines)


def _write(path, text):
    """Write only when the text changed, so Sphinx does not re-read unchanged pages."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def generate(app):
    out = Path(app.srcdir) / "api" / "generated"
    out.mkdir(parents=True, exist_ok=True)
    layout = plan()
    app.randvis_api = layout  # what check() verifies at the end of reading
    for module, entries in layout.items():
        _write(out / f"{module}.rst", _module_page(module, entries))
    _write(out / "index.rst", _index_page(list(layout)))
    keep = {f"{m}.rst" for m in layout} | {"index.rst"}
    for stale in out.glob("*.rst"):
        if stale.name not in keep:
            stale.unlink()


def check(app, env):
    """Every public name of every public module has an entry in the Python domain."""
    objects = env.get_domain("py").objects
    layout = app.randvis_api
    missing = [home for entries in layout.values() for _, _, home in entries if home not in objects]
    for home in sorted(set(missing)):
        LOG.warning("API reference: %s has no entry", home, type="apigen")
    undocumented_modules = [m for m in layout if m not in objects]
    for m in undocumented_modules:
        LOG.warning("API reference: module %s has no page", m, type="apigen")


def setup(app):
    app.connect("builder-inited", generate)
    app.connect("env-check-consistency", check)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
