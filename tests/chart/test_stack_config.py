"""One source for the kube-scheduler configuration (issue 9): what the local stack's
kube-scheduler runs with (`hami demo`, tests/e2e/test_scheduler*.py, the benchmarks) is the
chart's rendering with its default values; only the extender URL, CA file and client
certificate files, the kubeconfig and the leader election (the control plane's) differ, plus the
default profile when asked."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from hami.cluster import LocalCluster
from hami.demo import stack
from tests.chart.helm import kube_scheduler_config, render

pytestmark = pytest.mark.e2e  # needs the helm binary that `make helm-bin` builds

PORT = 40123


@pytest.mark.parametrize("default_profile", [False, True])
def test_stack_runs_the_charts_kube_scheduler_config(tmp_path: Path, default_profile: bool) -> None:
    run_dir = tmp_path / "cluster"
    options = stack.cluster_options(run_dir, "one-source", PORT, default_profile=default_profile)
    cluster = LocalCluster(options)
    # what LocalCluster writes to <run_dir>/kube-scheduler.yaml
    written = cluster._scheduler_config()

    expected = copy.deepcopy(kube_scheduler_config(render(None)))
    expected["clientConnection"] = {"kubeconfig": str(cluster.kubeconfig)}
    expected["leaderElection"] = {"leaderElect": False}
    if default_profile:
        expected["profiles"].insert(0, {"schedulerName": "default-scheduler"})
    (extender,) = expected["extenders"]
    access = stack.extender_access(run_dir)
    assert access.port != PORT  # /filter and /bind have a listener of their own
    extender["urlPrefix"] = f"https://127.0.0.1:{access.port}"
    extender["tlsConfig"] = {
        "caFile": str(stack.ca_file(run_dir)),
        "certFile": str(access.client.cert),
        "keyFile": str(access.client.key),
    }
    assert written == expected
    # and it survives the YAML round trip kube-scheduler reads
    assert yaml.safe_load(yaml.safe_dump(written)) == expected


def test_the_stack_verifies_the_extender_with_the_cluster_ca(tmp_path: Path) -> None:
    options = stack.cluster_options(tmp_path, "one-source", PORT)
    (extender,) = options.scheduler_extenders
    assert extender["enableHTTPS"] is True
    client = tmp_path.resolve() / "extender" / "hami-kube-scheduler"
    assert extender["tlsConfig"] == {
        "caFile": str(tmp_path.resolve() / "pki" / "ca.crt"),
        "certFile": f"{client}.crt",  # mTLS: the extender serves only this certificate
        "keyFile": f"{client}.key",
    }
    assert [p["schedulerName"] for p in options.scheduler_profiles] == [stack.PROFILE]


@pytest.mark.security
def test_the_stacks_client_certificate_is_for_client_auth_only(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    stack.cluster_options(tmp_path, "one-source", PORT)
    access = stack.extender_access(tmp_path)
    cert = x509.load_pem_x509_certificate(access.client.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(access.client_ca.read_bytes())
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.issuer == ca.subject
