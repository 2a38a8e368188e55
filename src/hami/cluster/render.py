"""Pure builders for the control plane's config files and command lines.

Nothing here starts a process or touches the network, so every flag and document can be
unit-tested. Flag choices are explained in docs/cluster.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hami.cluster.pki import ClusterPki

LOOPBACK = "127.0.0.1"
SERVICE_CIDR = "10.0.0.0/24"
POD_CIDR = "10.244.0.0/16"
FAKE_NODE_IP = "10.0.0.1"  # only written into fake Node status; never contacted
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_NODE_VALUE = "fake"
DEFAULT_SCHEDULER = "default-scheduler"
SCHEDULER_CONFIG_API = "kubescheduler.config.k8s.io/v1"


@dataclass(frozen=True, slots=True)
class Ports:
    """Loopback ports for one control plane."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    scheduler: int
    kwok: int

    @classmethod
    def from_list(cls, ports: Sequence[int]) -> Ports:
        etcd_client, etcd_peer, apiserver, scheduler, kwok = ports
        return cls(etcd_client, etcd_peer, apiserver, scheduler, kwok)

    @property
    def server(self) -> str:
        return f"https://{LOOPBACK}:{self.apiserver}"


def kubeconfig(server: str, pki: ClusterPki, name: str = "hami-local") -> dict[str, Any]:
    """An admin kubeconfig with absolute certificate paths."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {"server": server, "certificate-authority": str(pki.ca.cert)},
            }
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate": str(pki.admin.cert),
                    "client-key": str(pki.admin.key),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "admin"}}],
        "current-context": name,
    }


def scheduler_config(
    kubeconfig_path: Path,
    *,
    profiles: Sequence[Mapping[str, Any]] = (),
    extenders: Sequence[Mapping[str, Any]] = (),
    include_default_profile: bool = True,
) -> dict[str, Any]:
    """A ``KubeSchedulerConfiguration`` (v1) that callers extend.

    ``profiles`` are appended after the ``default-scheduler`` profile (dropped when
    ``include_default_profile`` is False); ``extenders`` are top-level, shared by all profiles,
    exactly as in the upstream type. Both take plain dicts in the upstream JSON field names,
    e.g. ``{"schedulerName": "hami-scheduler"}`` and
    ``{"urlPrefix": "http://127.0.0.1:8888", "filterVerb": "filter", "weight": 1}``.
    """
    all_profiles = [{"schedulerName": DEFAULT_SCHEDULER}] if include_default_profile else []
    all_profiles.extend(dict(profile) for profile in profiles)
    if not all_profiles:
        raise ValueError("the scheduler needs at least one profile")
    names = [profile.get("schedulerName") for profile in all_profiles]
    if len(set(names)) != len(names):
        raise ValueError(f"scheduler profile names must be unique, got {names}")
    document: dict[str, Any] = {
        "apiVersion": SCHEDULER_CONFIG_API,
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig_path)},
        "leaderElection": {"leaderElect": False},
        "profiles": all_profiles,
    }
    if extenders:
        document["extenders"] = [dict(extender) for extender in extenders]
    return document


def etcd_args(binary: Path, data_dir: Path, ports: Ports) -> list[str]:
    client = f"http://{LOOPBACK}:{ports.etcd_client}"
    peer = f"http://{LOOPBACK}:{ports.etcd_peer}"
    return [
        str(binary),
        "--name=hami",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=hami={peer}",
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def apiserver_args(
    binary: Path, pki: ClusterPki, ports: Ports, cert_dir: Path, *, controllers: bool = False
) -> list[str]:
    """``controllers``: kube-controller-manager runs too, so pods get ServiceAccount tokens
    (the admission plugin is on) and webhooks behind Services are reached at their endpoints
    (pod IPs: there is no kube-proxy)."""
    disabled = "TaintNodesByCondition" if controllers else "ServiceAccount,TaintNodesByCondition"
    routing = ["--enable-aggregator-routing=true"] if controllers else []
    return [
        str(binary),
        f"--etcd-servers=http://{LOOPBACK}:{ports.etcd_client}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={ports.apiserver}",
        f"--advertise-address={LOOPBACK}",
        "--endpoint-reconciler-type=none",
        f"--tls-cert-file={pki.apiserver.cert}",
        f"--tls-private-key-file={pki.apiserver.key}",
        f"--client-ca-file={pki.ca.cert}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.service_account_pub}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        f"--disable-admission-plugins={disabled}",
        *routing,
        "--allow-privileged=true",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
        f"--cert-dir={cert_dir}",
        # a real node (hami node): logs/exec reach kubelet at its InternalIP with a client cert
        f"--kubelet-client-certificate={pki.admin.cert}",
        f"--kubelet-client-key={pki.admin.key}",
        "--kubelet-preferred-address-types=InternalIP",
        "--v=1",
    ]


def scheduler_args(binary: Path, config_path: Path, kubeconfig_path: Path, port: int) -> list[str]:
    return [
        str(binary),
        f"--config={config_path}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={port}",
        f"--authentication-kubeconfig={kubeconfig_path}",
        f"--authorization-kubeconfig={kubeconfig_path}",
        "--v=1",
    ]


def controller_manager_args(
    binary: Path, kubeconfig_path: Path, pki: ClusterPki, port: int
) -> list[str]:
    """kube-controller-manager for a cluster with real nodes: every default controller but
    node IPAM and the cloud ones; service-account tokens signed with the apiserver's key."""
    return [
        str(binary),
        f"--kubeconfig={kubeconfig_path}",
        f"--authentication-kubeconfig={kubeconfig_path}",
        f"--authorization-kubeconfig={kubeconfig_path}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={port}",
        "--leader-elect=false",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.ca.cert}",
        "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
        "--allocate-node-cidrs=false",
        "--concurrent-deployment-syncs=2",
        "--v=1",
    ]


def kwok_args(binary: Path, kubeconfig_path: Path, stages: Path, port: int) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={kubeconfig_path}",
        f"--config={stages}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}={KWOK_NODE_VALUE}",
        f"--node-ip={FAKE_NODE_IP}",
        f"--cidr={POD_CIDR}",
        "--node-lease-duration-seconds=0",
        f"--server-address={LOOPBACK}:{port}",
    ]
