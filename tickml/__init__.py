"""tickml: from a Jupyter notebook to a live fraud-scoring pipeline on the TICK stack."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tickml")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
