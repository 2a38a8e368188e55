"""The real node's files and command lines (pure)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from hami.node import render
from hami.node.render import KubeletPorts, NodeLayout

LAYOUT = NodeLayout(Path("/w"))


def test_containerd_keeps_its_state_under_the_node_directory() -> None:
    config = tomllib.loads(render.containerd_config(LAYOUT))
    assert config["version"] == 2
    assert config["root"] == "/w/containerd/root" and config["state"] == "/w/containerd/state"
    assert config["grpc"]["address"] == "/w/containerd/containerd.sock"
    assert "io.containerd.internal.v1.opt" in config["disabled_plugins"]  # would write /opt
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == render.PAUSE_IMAGE
    assert cri["restrict_oom_score_adj"] is True  # no CAP_SYS_RESOURCE on the test hosts
    assert cri["cni"]["conf_dir"] == "/w/cni"
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is False


def test_containerd_applies_the_cdi_specs_dra_claims_are_prepared_as() -> None:
    cri = tomllib.loads(render.containerd_config(LAYOUT))["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["enable_cdi"] is True  # off by default in containerd 1.7
    assert cri["cdi_spec_dirs"] == ["/var/run/cdi"]  # the DRA plugin's, not the host's /etc/cdi


def test_cni_network_is_host_only() -> None:
    bridge = render.cni_network(LAYOUT)["plugins"][0]
    assert bridge["bridge"] == render.BRIDGE
    assert bridge["isGateway"] is False and bridge["ipMasq"] is False  # no ip_forward change
    assert bridge["ipam"]["dataDir"] == "/w/cni-ipam"


def test_kubelet_config_for_a_cgroup_v1_host() -> None:
    config = render.kubelet_config(LAYOUT, KubeletPorts(port=1, healthz=2))
    assert config["failCgroupV1"] is False and config["cgroupDriver"] == "cgroupfs"
    assert config["containerRuntimeEndpoint"] == "unix:///w/containerd/containerd.sock"
    assert config["address"] == render.NODE_IP and config["port"] == 1
    assert config["healthzBindAddress"] == "127.0.0.1" and config["healthzPort"] == 2
    assert config["protectKernelDefaults"] is False


def test_kubelet_sees_its_sysctls_in_a_private_mount_namespace() -> None:
    argv = render.kubelet_argv(Path("/b/kubelet"), LAYOUT, Path("/kc"), "n1")
    assert argv[:4] == ["unshare", "--mount", "--propagation", "unchanged"]
    script = argv[6]
    for name in render.KUBELET_SYSCTLS:
        assert f"/w/kubelet/sysctl/{name.replace('/', '.')} /proc/sys/{name}" in script
    assert script.endswith('exec "$0" "$@"') and argv[7] == "/b/kubelet"
    assert "--hostname-override=n1" in argv and f"--node-ip={render.NODE_IP}" in argv
