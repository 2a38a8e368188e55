"""Errors of the real node; each message says what is missing and how to get it."""

from __future__ import annotations

from hami.cluster.errors import ClusterError


class NodeError(ClusterError):
    """The real node cannot be started, checked or removed."""
