"""invoicesync: a watch-folder daemon that delivers invoice files to marketplace orders."""

__version__ = "0.1.0"  # the one source: pyproject.toml reads it (tool.setuptools.dynamic)
