"""Sphinx configuration of the randvis documentation.

Build offline with warnings as errors (docs/build.sh)::

    python -m sphinx -W -b html docs docs/_build/html

Nothing here reaches the network: no intersphinx inventories, no remote images
or fonts, no download in any example. The pages refer to one remote file,
MathJax (Sphinx's default ``mathjax_path``), which the reader's browser loads to
typeset formulas; set ``mathjax_path`` to a local copy to read them offline.
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

# The gallery runs in this process: figures are drawn off-screen.
os.environ.setdefault("MPLBACKEND", "agg")

import randvis  # noqa: E402

project = "randvis"
author = "the randvis authors"
copyright = "the randvis authors, MIT licence"
release = version = randvis.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "apigen",
    "gallerycheck",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "build.sh"]
templates_path = []
nitpicky = False

# --- API reference ---------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "none"           # the numpydoc Parameters sections carry the types
autodoc_preserve_defaults = True
numpydoc_show_class_members = False  # autodoc's :members: lists them once
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()
numpydoc_xref_param_type = False
numpydoc_use_plots = False
autosummary_generate = False         # the API pages come from _ext/apigen.py

# --- MyST (docs/theory.md and the derivation pages) ------------------------
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# --- gallery ---------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": False,   # every failure is listed, then the build fails
    "only_warn_on_example_error": False,
    "plot_gallery": "True",
    "capture_repr": ("_repr_html_", "__repr__"),
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "show_memory": False,
    "write_computation_times": False,  # its pages load scripts from CDNs
    "show_signature": False,
    "min_reported_time": 0,
    "doc_module": (),
    "reference_url": {},
}

# --- HTML --------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"randvis {release}"
html_theme_options = {
    "navbar_align": "left",
    "show_prev_next": True,
    "navigation_with_keys": False,
    "icon_links": [],
    "use_edit_page_button": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_sidebars = {"index": []}
html_static_path = []
html_show_sourcelink = False
html_copy_source = False
