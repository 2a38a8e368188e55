"""A real Kubernetes control plane on one machine, for tests and the demo.

etcd, kube-apiserver, kube-scheduler and kwok run as local processes on loopback ports, built
from upstream Go modules by ``hack/k8s/build.sh`` (``make cluster-bin``). See docs/cluster.md.
"""

from __future__ import annotations

from hami.cluster.binaries import Binaries, find_binaries
from hami.cluster.control_plane import ClusterOptions, LocalCluster
from hami.cluster.errors import BinariesNotFound, ClusterError, ComponentStartError
from hami.cluster.pki import CertPair, ClusterPki, write_serving_cert

__all__ = [
    "Binaries",
    "BinariesNotFound",
    "CertPair",
    "ClusterError",
    "ClusterOptions",
    "ClusterPki",
    "ComponentStartError",
    "LocalCluster",
    "find_binaries",
    "write_serving_cert",
]
