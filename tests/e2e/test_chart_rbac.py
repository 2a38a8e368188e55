"""RBAC of the chart, sufficient and minimal, against a real kube-apiserver.

* Sufficient: the chart's ServiceAccounts (TokenRequest) run the certgen script, kube-scheduler
  (with the chart's KubeSchedulerConfiguration), ``hami scheduler`` (the chart's flags) and
  ``hami device-plugin --simulate``; a GPU pod is admitted, scheduled, bound and allocated, and
  no process logs a 403.
* Minimal: every rule of the chart's own Roles/ClusterRoles is named by the operation that needs
  it (``OPERATIONS``), and removing that one rule makes a SubjectAccessReview for it deny.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from lightkube import codecs

from hami.cluster.binaries import find_binaries
from hami.cluster.control_plane import ClusterOptions, LocalCluster
from hami.cluster.ports import free_port
from hami.cluster.process import Component
from hami.demo.stack import HAMI, WEBHOOKS, create_node, gpu_pod, poll, ready_probe
from hami.k8s import objects
from hami.k8s.api import PODS
from hami.k8s.client import LightkubeAPI, load_kubeconfig
from tests.chart.helm import CHART, NAMESPACE, RELEASE, find, kube_scheduler_config, render

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="function")]

SCHED, KUBE_SCHED = f"{RELEASE}-scheduler", f"{RELEASE}-kube-scheduler"
PLUGIN, CERTGEN = f"{RELEASE}-device-plugin", f"{RELEASE}-certgen"
INVENTORY = Path(__file__).resolve().parents[2] / "examples" / "inventory" / "t4-pair.yaml"

# every (account, apiGroup, resource, verb, resourceName) the chart grants -> what needs it
OPERATIONS: dict[tuple[str, str, str, str, str], str] = {
    (SCHED, "", "pods", "get", ""): "scheduler /bind reads the pod; node lock owner check",
    (SCHED, "", "pods", "list", ""): "scheduler pod informer (list)",
    (SCHED, "", "pods", "watch", ""): "scheduler pod informer (watch)",
    (SCHED, "", "pods", "patch", ""): "scheduler /filter writes the decision annotations",
    (SCHED, "", "pods/binding", "create", ""): "scheduler /bind creates the Binding",
    (SCHED, "", "nodes", "get", ""): "scheduler node lock reads the node",
    (SCHED, "", "nodes", "list", ""): "scheduler node informer (list)",
    (SCHED, "", "nodes", "watch", ""): "scheduler node informer (watch)",
    (SCHED, "", "nodes", "patch", ""): "scheduler handshake annotation and node lock",
    (SCHED, "", "events", "create", ""): "scheduler FilteringSucceed/FilteringFailed events",
    (SCHED, "", "resourcequotas", "list", ""): "scheduler quota informer (list)",
    (SCHED, "", "resourcequotas", "watch", ""): "scheduler quota informer (watch)",
    (SCHED, "coordination.k8s.io", "leases", "create", ""): "extender creates its Lease",
    (
        SCHED,
        "coordination.k8s.io",
        "leases",
        "get",
        "hami-scheduler-extender",
    ): "extender observes its Lease",
    (
        SCHED,
        "coordination.k8s.io",
        "leases",
        "update",
        "hami-scheduler-extender",
    ): "extender renews its Lease",
    (
        KUBE_SCHED,
        "coordination.k8s.io",
        "leases",
        "get",
        "hami-scheduler",
    ): "kube-scheduler observes its Lease",
    (
        KUBE_SCHED,
        "coordination.k8s.io",
        "leases",
        "update",
        "hami-scheduler",
    ): "kube-scheduler renews its Lease",
    (PLUGIN, "", "nodes", "get", ""): "device plugin reads its node (registration, lock)",
    (
        PLUGIN,
        "",
        "nodes",
        "patch",
        "",
    ): "device plugin writes node-nvidia-register, releases the lock",
    (PLUGIN, "", "pods", "get", ""): "device plugin reads the lock owner pod",
    (
        PLUGIN,
        "",
        "pods",
        "list",
        "",
    ): "device plugin finds pods to allocate; monitor lists node pods",
    (PLUGIN, "", "pods", "watch", ""): "device plugin watches pods bound to its nodes",
    (PLUGIN, "", "pods", "patch", ""): "device plugin writes bind-phase",
    (PLUGIN, "", "events", "create", ""): "device plugin records allocation failures",
    (
        CERTGEN,
        "",
        "secrets",
        "get",
        f"{SCHED}-tls",
    ): "certgen keeps an existing certificate / reads the CA",
    (CERTGEN, "", "secrets", "create", ""): "certgen stores the certificate",
    (
        CERTGEN,
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        "get",
        f"{RELEASE}-webhook",
    ): "certgen reads the webhook",
    (
        CERTGEN,
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        "patch",
        f"{RELEASE}-webhook",
    ): "certgen sets caBundle",
}


def granted(
    docs: list[dict[str, Any]],
) -> dict[tuple[str, str, str, str, str], tuple[str, str, int]]:
    """Atom -> (kind, role name, rule index) for the chart's own Roles and ClusterRoles."""
    subjects: dict[tuple[str, str], str] = {}
    for doc in docs:
        if doc["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            (subject,) = doc["subjects"]
            subjects[(doc["roleRef"]["kind"], doc["roleRef"]["name"])] = subject["name"]
    atoms = {}
    for doc in docs:
        if doc["kind"] not in ("Role", "ClusterRole"):
            continue
        account = subjects[(doc["kind"], doc["metadata"]["name"])]
        for i, rule in enumerate(doc["rules"]):
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames") or [""]:
                            atoms[(account, group, resource, verb, name)] = (
                                doc["kind"],
                                doc["metadata"]["name"],
                                i,
                            )
    return atoms


class Admin:
    """Raw admin calls against the local apiserver (TokenRequest, SAR, apply)."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.http = httpx.Client(
            base_url=cluster.server,
            verify=cluster.client_ssl_context(),
            trust_env=False,
            timeout=10,
        )

    def token(self, account: str, pod: str = "") -> str:
        """A token for ``account``; bound to ``pod`` (whose node kube-apiserver then names in
        the token's user info, as for the DaemonSet's pods: the chart's policies need it)."""
        spec: dict[str, Any] = {"expirationSeconds": 3600}
        if pod:
            got = self.http.get(f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}")
            got.raise_for_status()
            uid = got.json()["metadata"]["uid"]
            spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1", "name": pod, "uid": uid}
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        url = f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{account}/token"
        response = self.http.post(url, json=body)
        response.raise_for_status()
        return str(response.json()["status"]["token"])

    def kubeconfig(self, account: str, directory: Path, pod: str = "") -> Path:
        ca = self.cluster.run_dir / "pki" / "ca.crt"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": self.cluster.server, "certificate-authority": str(ca)},
                }
            ],
            "users": [{"name": account, "user": {"token": self.token(account, pod)}}],
            "contexts": [
                {
                    "name": "local",
                    "context": {"cluster": "local", "user": account, "namespace": NAMESPACE},
                }
            ],
            "current-context": "local",
        }
        path = directory / f"{account}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        return path

    def allowed(self, account: str, group: str, resource: str, verb: str, name: str) -> bool:
        resource, _, sub = resource.partition("/")
        attrs = {"group": group, "resource": resource, "verb": verb, "namespace": NAMESPACE}
        if sub:
            attrs["subresource"] = sub
        if name:
            attrs["name"] = name
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": f"system:serviceaccount:{NAMESPACE}:{account}",
                "resourceAttributes": attrs,
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{NAMESPACE}",
                    "system:authenticated",
                ],
            },
        }
        response = self.http.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=body)
        response.raise_for_status()
        return bool(response.json()["status"].get("allowed"))

    def eventually(
        self, atom: tuple[str, str, str, str, str], *, allowed: bool, timeout: float = 10.0
    ) -> bool:
        """True once the SubjectAccessReview for ``atom`` answers ``allowed`` (RBAC changes
        reach the authorizer's cache asynchronously); False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.allowed(*atom) != allowed:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def put_role(self, doc: dict[str, Any]) -> None:
        kind = "roles" if doc["kind"] == "Role" else "clusterroles"
        where = f"namespaces/{NAMESPACE}/" if doc["kind"] == "Role" else ""
        url = f"/apis/rbac.authorization.k8s.io/v1/{where}{kind}/{doc['metadata']['name']}"
        response = self.http.patch(
            url,
            content=yaml.safe_dump(doc),
            params={"fieldManager": "test", "force": "true"},
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        response.raise_for_status()


@pytest.fixture(scope="module")
def chart_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A control plane of its own: no extender in its kube-scheduler (ours runs separately)."""
    options = ClusterOptions(run_dir=tmp_path_factory.mktemp("chart-rbac"), name="hami-chart")
    cluster = LocalCluster(options).start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def _apply_chart(cluster: LocalCluster, docs: list[dict[str, Any]]) -> None:
    api = LightkubeAPI(load_kubeconfig(cluster.kubeconfig))
    from lightkube import AsyncClient

    client = AsyncClient(config=load_kubeconfig(cluster.kubeconfig), trust_env=False)
    try:
        await client.apply(
            codecs.from_dict(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
            ),
            field_manager="helm",
        )
        for doc in docs:
            if doc["kind"] in ("Deployment", "DaemonSet", "Job", "Secret"):
                continue  # nothing runs them here; the processes below play them
            ns = NAMESPACE if doc["metadata"].get("namespace") else None
            await client.apply(codecs.from_dict(doc), namespace=ns, field_manager="helm")  # type: ignore[call-overload]  # lightkube's apply overloads take no namespace
    finally:
        await client.close()
        await api.close()


def _command(docs: list[dict[str, Any]], container: str) -> list[str]:
    deploy = find(docs, "Deployment", SCHED)
    (found,) = [
        c for c in deploy["spec"]["template"]["spec"]["containers"] if c["name"] == container
    ]
    return list(found["command"])


async def test_chart_rbac_is_sufficient_and_minimal(  # noqa: PLR0915 - one story
    chart_cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster, docs = chart_cluster, render(None)
    await _apply_chart(cluster, docs)
    admin = Admin(cluster)
    logs = tmp_path / "logs"
    components: list[Component] = []

    def start(name: str, argv: list[str], env: dict[str, str] | None = None) -> Component:
        component = Component(name, argv, logs / f"{name}.log", env)
        component.start(die_with_parent=True)
        components.append(component)
        return component

    try:
        # certgen, as its ServiceAccount: the Secret, then the webhook's caBundle
        certgen = [sys.executable, str(CHART / "files" / "certgen.py")]
        job = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Job"}
        for phase in ("pre", "post"):
            args = job[f"{CERTGEN}-{phase}"]["spec"]["template"]["spec"]["containers"][0][
                "command"
            ][2:]
            env = {"KUBECONFIG": str(admin.kubeconfig(CERTGEN, tmp_path)), "PATH": "/usr/bin:/bin"}
            proc = await asyncio.create_subprocess_exec(
                *certgen,
                *args,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            out, _ = await proc.communicate()
            assert proc.returncode == 0, out.decode()
        secret = admin.http.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{SCHED}-tls").json()[
            "data"
        ]
        tls = tmp_path / "tls"
        tls.mkdir()
        for key, value in secret.items():
            (tls / key).write_bytes(base64.b64decode(value))
        # kube-scheduler's client certificate for the extender (mTLS), from the same hook
        client_tls = tmp_path / "tls-client"
        client_tls.mkdir()
        client_secret = admin.http.get(
            f"/api/v1/namespaces/{NAMESPACE}/secrets/{SCHED}-client-tls"
        ).json()["data"]
        for key, value in client_secret.items():
            (client_tls / key).write_bytes(base64.b64decode(value))
        hook = admin.http.get(
            f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{RELEASE}-webhook"
        ).json()
        assert hook["webhooks"][0]["clientConfig"]["caBundle"] == secret["ca.crt"]

        # hami scheduler with the chart's flags (listen address and file paths made local)
        port, extender_port = free_port(), free_port()
        device_config = tmp_path / "device-config.yaml"
        device_config.write_text(
            find(docs, "ConfigMap", f"{SCHED}-device")["data"]["device-config.yaml"]
        )
        local = {
            "/device-config.yaml": str(device_config),
            "=/tls/": f"={tls}/",
            "=/tls-client-ca/": f"={client_tls}/",
            "$(POD_NAME)": "replica-0",
        }
        argv = [HAMI, *_command(docs, "vgpu-scheduler-extender")[1:]]
        argv = [a.replace("0.0.0.0:8443", f"127.0.0.1:{port}") for a in argv]
        argv = [a.replace("0.0.0.0:8444", f"127.0.0.1:{extender_port}") for a in argv]
        for chart_path, path in local.items():
            argv = [a.replace(chart_path, path) for a in argv]
        argv.append(f"--kubeconfig={admin.kubeconfig(SCHED, tmp_path)}")
        scheduler = start("hami-scheduler", argv)
        scheduler.wait_ready(ready_probe(port, tls / "ca.crt"), 60.0)

        # the webhook as the chart registers it, pointed at the local process
        hook["webhooks"][0]["clientConfig"] = {
            "url": f"https://127.0.0.1:{port}/webhook",
            "caBundle": secret["ca.crt"],
        }
        hook["metadata"] = {"name": hook["metadata"]["name"]}
        api = LightkubeAPI(load_kubeconfig(cluster.kubeconfig))
        await api.delete(WEBHOOKS, f"{RELEASE}-webhook")
        await api.create(WEBHOOKS, hook)

        # kube-scheduler with the chart's configuration, as its own ServiceAccount
        config = kube_scheduler_config(docs)
        config["clientConnection"]["kubeconfig"] = str(admin.kubeconfig(KUBE_SCHED, tmp_path))
        (extender,) = config["extenders"]
        assert extender["urlPrefix"] == f"https://{SCHED}.{NAMESPACE}.svc:8444"
        extender["urlPrefix"] = f"https://127.0.0.1:{extender_port}"
        extender["tlsConfig"]["caFile"] = str(tls / "ca.crt")
        extender["tlsConfig"]["certFile"] = str(client_tls / "tls.crt")
        extender["tlsConfig"]["keyFile"] = str(client_tls / "tls.key")
        config_path = tmp_path / "kube-scheduler.yaml"
        config_path.write_text(yaml.safe_dump(config))
        binary = find_binaries(None).kube_scheduler
        start(
            "kube-scheduler",
            [
                str(binary),
                f"--config={config_path}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
            ],
        )

        # the device plugin (simulated) as its ServiceAccount; simulate mode also plays kubelet,
        # whose node status write is granted here by a test-only role, not the chart
        kubelet = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "test-kubelet-part"},
            "rules": [{"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]}],
        }
        admin.put_role(kubelet)
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "test-kubelet-part"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "test-kubelet-part",
            },
            "subjects": [{"kind": "ServiceAccount", "name": PLUGIN, "namespace": NAMESPACE}],
        }
        admin.http.post(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", json=binding
        ).raise_for_status()
        await create_node(api, "gpu-1", labels={"gpu": "on"})
        # the DaemonSet's pod on gpu-1 (nothing runs it): the plugin's token is bound to it
        agent_pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "device-plugin-gpu-1"},
            "spec": {
                "serviceAccountName": PLUGIN,
                "nodeName": "gpu-1",
                "containers": [{"name": "plugin", "image": "example.invalid/hami"}],
            },
        }
        await api.create(PODS, agent_pod, NAMESPACE)
        plugin_kubeconfig = admin.kubeconfig(PLUGIN, tmp_path, "device-plugin-gpu-1")
        start(
            "device-plugin",
            [
                HAMI,
                "device-plugin",
                "--simulate",
                "--kubeconfig",
                str(plugin_kubeconfig),
                "--nodes",
                f"gpu-1={INVENTORY}",
            ],
        )

        # a GPU pod: webhook -> kube-scheduler -> /filter -> /bind -> Allocate
        await api.create(PODS, gpu_pod("demo", {"gpu": 1, "gpumem": 3000}), "default")

        async def allocated() -> bool:
            pod = await api.get(PODS, "demo", "default")
            notes = objects.annotations(pod)
            return (
                bool(objects.spec(pod).get("nodeName"))
                and notes.get("hami.io/bind-phase") == "success"
            )

        try:
            await poll(allocated, 60.0, "the demo pod to be bound and allocated")
        except Exception:
            for c in components:
                print(f"--- {c.name}\n{c.log_path.read_text(errors='replace')[-3000:]}")
            raise
        pod = await api.get(PODS, "demo", "default")
        assert objects.spec(pod)["schedulerName"] == "hami-scheduler"
        assert objects.spec(pod)["nodeName"] == "gpu-1"
        await api.close()
        for c in components:
            text = c.log_path.read_text(errors="replace")
            assert "forbidden" not in text.lower(), (
                f"{c.name} was refused something:\n{text[-3000:]}"
            )
    finally:
        for c in reversed(components):
            c.stop(10.0)

    # minimal: each granted rule has a named operation, and is the only grant of its atom
    atoms = granted(docs)
    assert set(atoms) == set(OPERATIONS), set(atoms) ^ set(OPERATIONS)
    roles = {
        (d["kind"], d["metadata"]["name"]): d for d in docs if d["kind"] in ("Role", "ClusterRole")
    }
    for atom, (kind, name, index) in atoms.items():
        assert admin.eventually(atom, allowed=True), f"{atom} ({OPERATIONS[atom]}) is not allowed"
        role = copy.deepcopy(roles[(kind, name)])
        rule = role["rules"][index]
        rest = copy.deepcopy(rule)
        rest["verbs"] = [v for v in rule["verbs"] if v != atom[3]]
        role["rules"][index : index + 1] = [rest] if rest["verbs"] else []
        admin.put_role(role)
        try:
            # the apiserver's RBAC cache follows the update within moments: poll, don't sleep
            denied = admin.eventually(atom, allowed=False)
            assert denied, f"without it, {atom} is still allowed: a redundant rule"
        finally:
            admin.put_role(roles[(kind, name)])
