"""End-to-end fixtures: a real local control plane (see tests.e2e.localcluster)."""

from tests.e2e.localcluster import (  # noqa: F401  (pytest fixtures, used by name)
    k8s_cluster,
    k8s_scheduler_extenders,
    k8s_scheduler_profiles,
    kube,
    namespace,
)
from tests.e2e.stack import api  # noqa: F401  (the client of a module's `stack` fixture)
