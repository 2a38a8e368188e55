"""A real Kubernetes node on this machine: containerd + kubelet (built from Go modules) on a
host-only bridge, joined to the local control plane (docs/real-node.md). Root only; one per
machine; ``down`` leaves the host as it was."""
