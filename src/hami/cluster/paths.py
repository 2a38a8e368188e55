"""Where the local control plane keeps its binaries and run directories.

This module is the only place in ``hami.cluster`` that reads the environment:

* ``HAMI_CACHE`` (default ``~/.cache/hami``): the cache root shared with the Makefile;
* ``HAMI_K8S_BIN_DIR``: use binaries from this directory instead of the build's pointer file.
"""

from __future__ import annotations

import os
from pathlib import Path

POINTER_FILE = "k8s-current.json"


def cache_root() -> Path:
    """The hami cache directory (``$HAMI_CACHE`` or ``~/.cache/hami``)."""
    configured = os.environ.get("HAMI_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "hami"


def binaries_override() -> Path | None:
    """An explicit binaries directory from ``$HAMI_K8S_BIN_DIR``, if set."""
    configured = os.environ.get("HAMI_K8S_BIN_DIR")
    return Path(configured) if configured else None


def run_root() -> Path:
    """Parent of the run directories that ``hami cluster up`` creates."""
    return cache_root() / "run"


def child_env(**overrides: str) -> dict[str, str]:
    """The current environment with ``overrides`` applied, for a component process."""
    env = dict(os.environ)
    env.update(overrides)
    return env
