"""Pure builders for the real node's files and command lines: containerd's config, the CNI
network, the kubelet configuration and argv. Nothing here touches the host, so every choice
is unit-tested; the reasons are in docs/real-node.md."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BRIDGE = "hamicni0"
SUBNET = "10.88.7.0/24"
NODE_IP = "10.88.7.1"
PREFIX_LEN = 24
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
KUBELET_ROOT = Path("/var/lib/kubelet")  # the device-plugin socket path is fixed below it
PAUSE_IMAGE = "hami.local/pause:1"
SERVICE_CIDR = "10.0.0.0/24"  # the local control plane's (hami.cluster.render)
KUBERNETES_SERVICE_IP = "10.0.0.1"
CLUSTER_DOMAIN = "cluster.local"
DNS_RECORDS = {f"kubernetes.default.svc.{CLUSTER_DOMAIN}": KUBERNETES_SERVICE_IP}
K8S_NAMESPACE = "k8s.io"  # containerd namespace the CRI plugin uses
# where DRA kubelet plugins write CDI specs (`hami dra-plugin --cdi-spec-dir`); containerd reads
# only this one (not /etc/cdi: nothing of the host's own is injected into the node's pods)
CDI_SPEC_DIR = Path("/var/run/cdi")

# What kubelet's setupKernelTunables insists on; kubelet sees these values in its own mount
# namespace (files bound over /proc/sys/...), so it never rewrites the host's sysctls.
KUBELET_SYSCTLS = {
    "vm/overcommit_memory": "1",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
}

# containerd plugins that would write outside the node's own directories or are not used.
DISABLED_CONTAINERD_PLUGINS = (
    "io.containerd.internal.v1.opt",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
)


@dataclass(frozen=True, slots=True)
class NodeLayout:
    """Where one real node keeps its state (all under ``work``)."""

    work: Path

    @property
    def containerd_dir(self) -> Path:
        return self.work / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd_dir / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.containerd_dir / "config.toml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.work / "cni"

    @property
    def kubelet_config(self) -> Path:
        return self.work / "kubelet" / "config.yaml"

    @property
    def sysctl_dir(self) -> Path:
        return self.work / "kubelet" / "sysctl"

    @property
    def images_dir(self) -> Path:
        return self.work / "images"

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    @property
    def state_file(self) -> Path:
        return self.work / "state.json"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string is a JSON string


def _toml(tables: dict[str, dict[str, Any]], top: dict[str, Any]) -> str:
    lines = [f"{key} = {_toml_value(value)}" for key, value in top.items()]
    for table, values in tables.items():
        lines += ["", f"[{table}]"]
        lines += [f"  {key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def containerd_config(layout: NodeLayout) -> str:
    """containerd 1.7 (config version 2): state, root and socket under the node's directory;
    CRI with our pause image, cgroupfs, overlayfs, the OOM-score clamp this host needs, and CDI
    on (off by default in 1.7), so the devices a DRA claim is prepared as reach the container."""
    base = layout.containerd_dir
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    runc = f"{cri}.containerd.runtimes.runc"
    return _toml(
        {
            "grpc": {"address": str(layout.containerd_socket)},
            "ttrpc": {"address": str(base / "containerd.sock.ttrpc")},
            "debug": {"address": ""},
            "metrics": {"address": ""},
            cri: {
                "sandbox_image": PAUSE_IMAGE,
                # root here lacks CAP_SYS_RESOURCE: runc could not lower oom_score_adj
                "restrict_oom_score_adj": True,
                "netns_mounts_under_state_dir": True,
                "enable_selinux": False,
                "disable_apparmor": True,
                "enable_cdi": True,
                "cdi_spec_dirs": [str(CDI_SPEC_DIR)],
            },
            f"{cri}.containerd": {"snapshotter": "overlayfs", "default_runtime_name": "runc"},
            runc: {"runtime_type": "io.containerd.runc.v2"},
            f"{runc}.options": {"SystemdCgroup": False},
            f"{cri}.cni": {"bin_dir": str(CNI_BIN_DIR), "conf_dir": str(layout.cni_conf_dir)},
        },
        {
            "version": 2,
            "root": str(base / "root"),
            "state": str(base / "state"),
            "disabled_plugins": list(DISABLED_CONTAINERD_PLUGINS),
        },
    )


def cni_network(layout: NodeLayout) -> dict[str, Any]:
    """A host-only bridge network: no gateway role (it would enable ip_forward), no masquerade;
    the host's end of the bridge (the node IP) is assigned before containerd starts."""
    gateway = NODE_IP
    return {
        "cniVersion": "0.4.0",
        "name": "hami-node",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": SUBNET, "gateway": gateway}]],
                    # Service IPs go to the host, where the kubernetes Service is DNATed
                    "routes": [{"dst": SERVICE_CIDR, "gw": gateway}],
                    "dataDir": str(layout.work / "cni-ipam"),
                },
            },
            {"type": "loopback"},
        ],
    }


@dataclass(frozen=True, slots=True)
class KubeletPorts:
    port: int  # the kubelet API on the node IP (logs, exec)
    healthz: int  # healthz on 127.0.0.1


def kubelet_config(layout: NodeLayout, ports: KubeletPorts) -> dict[str, Any]:
    """KubeletConfiguration for a cgroup-v1 test host shared with other work."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "failSwapOn": False,
        "address": NODE_IP,
        "port": ports.port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports.healthz,
        "authentication": {
            "anonymous": {"enabled": True},
            "webhook": {"enabled": False},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "evictionHard": {
            "memory.available": "1Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "podLogsDir": str(layout.work / "pod-logs"),
        "resolvConf": "",
        "clusterDNS": [NODE_IP],  # hami.node.dns
        "clusterDomain": CLUSTER_DOMAIN,
        "protectKernelDefaults": False,
        # no KUBE-FIREWALL / canary chains in the host's iptables (kube-proxy's business)
        "makeIPTablesUtilChains": False,
        "serializeImagePulls": False,
        "syncFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "fileCheckFrequency": "10s",
        "registerNode": True,
    }


def dns_argv(python: str) -> list[str]:
    records = [f"--record={name}={ip}" for name, ip in DNS_RECORDS.items()]
    return [python, "-m", "hami.node.dns", f"--listen={NODE_IP}:53", *records]


def kubelet_argv(kubelet: Path, layout: NodeLayout, kubeconfig: Path, node_name: str) -> list[str]:
    """kubelet in a private mount namespace whose /proc/sys files hold what it insists on (so
    the host's sysctls stay as they are); its mounts under the shared kubelet root still reach
    the host. ``unshare`` execs, so the pid is kubelet's."""
    binds = " && ".join(
        f"mount --bind {layout.sysctl_dir / name.replace('/', '.')} /proc/sys/{name}"
        for name in KUBELET_SYSCTLS
    )
    flags = [
        str(kubelet),
        f"--config={layout.kubelet_config}",
        f"--kubeconfig={kubeconfig}",
        f"--hostname-override={node_name}",
        f"--node-ip={NODE_IP}",
        f"--root-dir={KUBELET_ROOT}",
        f"--cert-dir={layout.work / 'kubelet' / 'pki'}",
        "--v=2",
        "--vmodule=manager=4",
    ]
    return [
        "unshare",
        "--mount",
        "--propagation",
        "unchanged",
        "sh",
        "-c",
        f'{binds} && exec "$0" "$@"',
        *flags,
    ]
