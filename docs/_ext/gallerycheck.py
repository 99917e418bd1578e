"""Rules every gallery example keeps, checked before the examples run.

Each ``examples/plot_*.py`` must

* open with a docstring whose first line is its title (sphinx-gallery's page title);
* contain at least one ``assert``: an example asserts what it shows, so a broken
  example fails the build instead of drawing a wrong picture;
* import nothing that reaches the network (the build is offline).

A broken rule is a warning, hence an error under ``-W``.
"""
from __future__ import annotations

import ast
from pathlib import Path

from sphinx.util import logging

LOG = logging.getLogger(__name__)

#: modules an example may not import: the documentation builds offline
NETWORK_MODULES = ("urllib", "http", "requests", "socket", "ftplib", "httpx", "urllib3", "pooch")


def problems(path):
    """The rules ``path`` breaks, as sentences (empty when it keeps them all)."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    out = []
    doc = ast.get_docstring(tree)
    if not doc or not doc.strip().splitlines()[0].strip():
        out.append("has no title docstring")
    if not any(isinstance(node, ast.Assert) for node in ast.walk(tree)):
        out.append("asserts nothing it shows (add an assert on its numbers)")
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            if name.split(".")[0] in NETWORK_MODULES:
                out.append(f"imports {name}, a network module (line {node.lineno})")
    return out


def check(app):
    conf = app.config.sphinx_gallery_conf
    dirs = conf["examples_dirs"]
    for folder in [dirs] if isinstance(dirs, str) else dirs:
        examples = sorted((Path(app.srcdir) / folder).glob("plot_*.py"))
        if not examples:
            LOG.warning("gallery: no plot_*.py in %s", folder, type="gallerycheck")
        for path in examples:
            for text in problems(path):
                LOG.warning("gallery: %s %s", path.name, text, type="gallerycheck")


def setup(app):
    app.connect("builder-inited", check)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
