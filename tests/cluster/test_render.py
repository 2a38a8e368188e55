from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lightkube import KubeConfig

from hami.cluster import render
from hami.cluster.pki import ClusterPki, write_cluster_pki

PORTS = render.Ports(etcd_client=2379, etcd_peer=2380, apiserver=6443, scheduler=10259, kwok=10247)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPki:
    return write_cluster_pki(tmp_path_factory.mktemp("pki"))


def _flags(argv: list[str]) -> dict[str, str]:
    return dict(arg.removeprefix("--").split("=", 1) for arg in argv[1:] if "=" in arg)


def test_default_scheduler_config_has_only_the_default_profile() -> None:
    config = render.scheduler_config(Path("/k/kubeconfig"))
    assert config["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert config["kind"] == "KubeSchedulerConfiguration"
    assert config["profiles"] == [{"schedulerName": "default-scheduler"}]
    assert config["leaderElection"] == {"leaderElect": False}
    assert config["clientConnection"] == {"kubeconfig": "/k/kubeconfig"}
    assert "extenders" not in config


def test_scheduler_config_takes_extra_profiles_and_top_level_extenders() -> None:
    extender = {"urlPrefix": "http://127.0.0.1:9000", "filterVerb": "filter", "weight": 1}
    config = render.scheduler_config(
        Path("/k"), profiles=[{"schedulerName": "hami-scheduler"}], extenders=[extender]
    )
    assert [p["schedulerName"] for p in config["profiles"]] == [
        "default-scheduler",
        "hami-scheduler",
    ]
    assert config["extenders"] == [extender]


def test_scheduler_config_can_drop_the_default_profile() -> None:
    config = render.scheduler_config(
        Path("/k"), profiles=[{"schedulerName": "hami-scheduler"}], include_default_profile=False
    )
    assert config["profiles"] == [{"schedulerName": "hami-scheduler"}]
    with pytest.raises(ValueError, match="at least one profile"):
        render.scheduler_config(Path("/k"), include_default_profile=False)


def test_scheduler_config_rejects_duplicate_profiles() -> None:
    with pytest.raises(ValueError, match="unique"):
        render.scheduler_config(Path("/k"), profiles=[{"schedulerName": "default-scheduler"}])


def test_kubeconfig_is_loadable_by_lightkube(pki: ClusterPki, tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(render.kubeconfig(PORTS.server, pki)))
    config = KubeConfig.from_file(path).get()
    assert config is not None
    assert config.cluster.server == "https://127.0.0.1:6443"
    assert config.user is not None
    assert config.user.client_cert == str(pki.admin.cert)


def test_etcd_peer_flags_agree(tmp_path: Path) -> None:
    flags = _flags(render.etcd_args(Path("/b/etcd"), tmp_path, PORTS))
    peer = "http://127.0.0.1:2380"
    assert flags["listen-peer-urls"] == flags["initial-advertise-peer-urls"] == peer
    assert flags["initial-cluster"] == f"hami={peer}"
    assert flags["listen-client-urls"] == "http://127.0.0.1:2379"


def test_apiserver_runs_rbac_on_loopback_with_our_pki(pki: ClusterPki, tmp_path: Path) -> None:
    argv = render.apiserver_args(Path("/b/kube-apiserver"), pki, PORTS, tmp_path)
    flags = _flags(argv)
    assert argv[0] == "/b/kube-apiserver"
    assert flags["authorization-mode"] == "Node,RBAC"
    assert flags["etcd-servers"] == "http://127.0.0.1:2379"
    assert flags["bind-address"] == flags["advertise-address"] == "127.0.0.1"
    assert flags["secure-port"] == "6443"
    assert flags["client-ca-file"] == str(pki.ca.cert)
    assert "TaintNodesByCondition" in flags["disable-admission-plugins"]
    assert "ServiceAccount" in flags["disable-admission-plugins"]
    # a real node's logs/exec: kubelet reached at its InternalIP with the admin client cert
    assert flags["kubelet-client-certificate"] == str(pki.admin.cert)
    assert flags["kubelet-preferred-address-types"] == "InternalIP"


def test_scheduler_and_kwok_flags(tmp_path: Path) -> None:
    sched = _flags(render.scheduler_args(Path("/b/s"), tmp_path / "c.yaml", tmp_path / "kc", 1))
    assert sched["config"] == str(tmp_path / "c.yaml") and sched["secure-port"] == "1"
    kwok = _flags(render.kwok_args(Path("/b/k"), tmp_path / "kc", tmp_path / "st.yaml", 7))
    assert kwok["manage-nodes-with-annotation-selector"] == "kwok.x-k8s.io/node=fake"
    assert kwok["manage-all-nodes"] == "false"
    assert kwok["server-address"] == "127.0.0.1:7"
    assert kwok["config"] == str(tmp_path / "st.yaml")


def test_controller_manager_signs_tokens_with_the_apiserver_key(pki: ClusterPki) -> None:
    flags = _flags(render.controller_manager_args(Path("/b/kcm"), Path("/kc"), pki, 9))
    assert flags["service-account-private-key-file"] == str(pki.service_account_key)
    assert flags["root-ca-file"] == str(pki.ca.cert)
    assert flags["bind-address"] == "127.0.0.1" and flags["secure-port"] == "9"
    assert flags["leader-elect"] == "false" and "-nodeipam" in flags["controllers"]


def test_apiserver_with_controllers_gives_pods_tokens(pki: ClusterPki, tmp_path: Path) -> None:
    argv = render.apiserver_args(Path("/b/a"), pki, PORTS, tmp_path, controllers=True)
    flags = _flags(argv)
    assert "ServiceAccount" not in flags["disable-admission-plugins"]
    assert flags["enable-aggregator-routing"] == "true"
