"""The installed distribution's version (the instrumentation scope's version on every span)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("costspan")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"
