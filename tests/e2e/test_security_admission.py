"""Only the scheduler decides (issue 17; docs/security.md), against a real kube-apiserver with the
chart's exact RBAC and ValidatingAdmissionPolicies — and without hami's webhook, as when it is
down (its failurePolicy is Ignore) or when a pod is labelled so that it never sees it.

Identities are real: a tenant ServiceAccount with the built-in ``edit`` role in its namespace,
the chart's scheduler account, and the chart's device-plugin account with a token bound to a pod
on node ``gpu-1`` (kube-apiserver then names the node in ``userInfo.extra``), as the DaemonSet's
pod gets it.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from lightkube import codecs
from lightkube.core.client import Client

from hami.api import keys
from hami.cluster.control_plane import ClusterOptions, LocalCluster
from hami.k8s.client import load_kubeconfig
from tests.chart.helm import NAMESPACE, RELEASE, find, render

pytestmark = [pytest.mark.e2e, pytest.mark.security]

SCHED, PLUGIN = f"{RELEASE}-scheduler", f"{RELEASE}-device-plugin"
TENANT_NS, RELAXED_NS = "tenant", "relaxed"
FORGED = "GPU-0,NVIDIA,999999,100:;"
POLICIES = ("allocations", "node-agents", "scheduler-nodes", "device-pods")


class Api:
    """Raw calls as one identity (a bearer token) or as the cluster admin (no token: the
    cluster's client certificate)."""

    def __init__(self, cluster: LocalCluster, token: str | None = None) -> None:
        self.http = httpx.Client(
            base_url=cluster.server,
            # a token client presents no certificate: x509 would authenticate it as the admin
            verify=(
                ssl.create_default_context(cafile=cluster.run_dir / "pki" / "ca.crt")
                if token
                else cluster.client_ssl_context()
            ),
            trust_env=False,
            timeout=15,
            headers={"Authorization": f"Bearer {token}"} if token else {},
        )

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(path, json=body)

    def patch(self, path: str, body: dict[str, Any]) -> httpx.Response:
        headers = {"Content-Type": "application/merge-patch+json"}
        return self.http.patch(path, content=json.dumps(body), headers=headers)


def pod_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/pods" + (f"/{name}" if name else "")


def notes(values: Mapping[str, str | None]) -> dict[str, Any]:
    return {"metadata": {"annotations": dict(values)}}


def gpu_pod(name: str, *, env: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "cuda",
        "image": "example.invalid/cuda",
        "resources": {"limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "3000"}},
    }
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    meta = spec.pop("metadata", {})
    body = {"schedulerName": "hami-scheduler", **spec, "containers": [container]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **meta}, "spec": body}


def refused(response: httpx.Response, *needles: str) -> str:
    """The denial's message, checked for each of ``needles``."""
    assert response.status_code in (403, 422), (response.status_code, response.text)
    message = str(response.json().get("message", ""))
    for needle in needles:
        assert needle in message, message
    return message


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code < 300, (response.status_code, response.text)
    return dict(response.json())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    options = ClusterOptions(run_dir=tmp_path_factory.mktemp("security"), name="hami-security")
    local = LocalCluster(options).start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="module")
def chart(cluster: LocalCluster) -> list[dict[str, Any]]:
    """The chart's accounts, RBAC and policies applied (nothing runs: the tests play the parts);
    its webhook is left out."""
    docs = render(None)
    kinds = {d["kind"] for d in docs}
    assert {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= kinds
    client = Client(config=load_kubeconfig(cluster.kubeconfig), trust_env=False)
    try:
        for ns in (NAMESPACE, TENANT_NS, RELAXED_NS):
            labels = {"hami.io/webhook": "ignore"} if ns == RELAXED_NS else {}
            manifest = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": labels},
            }
            client.apply(codecs.from_dict(manifest), field_manager="test")
        skip = ("Deployment", "DaemonSet", "Job", "Secret", "MutatingWebhookConfiguration")
        for doc in docs:
            if doc["kind"] in skip:
                continue
            where = NAMESPACE if doc["metadata"].get("namespace") else None
            resource = codecs.from_dict(doc)
            client.apply(resource, namespace=where, field_manager="helm")  # type: ignore[call-overload]
    finally:
        client.close()
    return docs


@pytest.fixture(scope="module")
def admin(cluster: LocalCluster, chart: list[dict[str, Any]]) -> Api:
    api = Api(cluster)
    for node in ("gpu-1", "gpu-2"):
        ok(
            api.post(
                "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}
            )
        )
    ok(api.post(f"/api/v1/namespaces/{TENANT_NS}/serviceaccounts", {"metadata": {"name": "alice"}}))
    # what a namespace editor may do with pods (and, to show it does not help, their status)
    role = {
        "metadata": {"name": "tenant-pods"},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["pods"],
                "verbs": ["create", "get", "list", "patch", "update", "delete"],
            },
            {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch", "update"]},
        ],
    }
    ok(api.post("/apis/rbac.authorization.k8s.io/v1/clusterroles", role))
    binding = {
        "metadata": {"name": "alice"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "tenant-pods",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "alice", "namespace": TENANT_NS}],
    }
    for ns in (TENANT_NS, RELAXED_NS):
        ok(api.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", binding))
    for ns in (TENANT_NS, RELAXED_NS):  # RBAC reaches the authorizer's cache moments later
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": f"system:serviceaccount:{TENANT_NS}:alice",
                "resourceAttributes": {"resource": "pods", "verb": "create", "namespace": ns},
            },
        }
        deadline = time.monotonic() + 10
        url = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
        while not ok(api.post(url, review))["status"].get("allowed"):
            assert time.monotonic() < deadline, "tenant RBAC not in force"
            time.sleep(0.05)
    # the policies are in force once a forged pod is refused (their type check runs first)
    deadline = time.monotonic() + 30
    while True:
        probe = gpu_pod("probe", metadata={"annotations": {"hami.io/vgpu-node": "gpu-1"}})
        response = api.post(pod_path(TENANT_NS), probe)
        if response.status_code in (403, 422):
            break
        if response.status_code < 300:
            api.http.delete(pod_path(TENANT_NS, "probe"), params={"gracePeriodSeconds": "0"})
        assert time.monotonic() < deadline, f"policies not in force: {response.text}"
        time.sleep(0.2)
    for name in POLICIES:
        policy = ok(
            api.http.get(
                f"/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/{RELEASE}-{name}"
            )
        )
        warnings = (policy.get("status") or {}).get("typeChecking", {}).get("expressionWarnings")
        assert not warnings, (name, warnings)
    return api


def token(admin: Api, namespace: str, account: str, bound_pod: str = "") -> str:
    spec: dict[str, Any] = {"expirationSeconds": 3600}
    if bound_pod:
        pod = ok(admin.http.get(pod_path(namespace, bound_pod)))
        spec["boundObjectRef"] = {
            "kind": "Pod",
            "apiVersion": "v1",
            "name": bound_pod,
            "uid": pod["metadata"]["uid"],
        }
    url = f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token"
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    return str(ok(admin.post(url, body))["status"]["token"])


@pytest.fixture(scope="module")
def tenant(cluster: LocalCluster, admin: Api) -> Api:
    return Api(cluster, token(admin, TENANT_NS, "alice"))


@pytest.fixture(scope="module")
def scheduler(cluster: LocalCluster, admin: Api) -> Api:
    return Api(cluster, token(admin, NAMESPACE, SCHED))


@pytest.fixture(scope="module")
def plugin(cluster: LocalCluster, admin: Api) -> Api:
    """The device plugin on gpu-1: a token bound to its pod there, as the DaemonSet's gets."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "device-plugin-gpu-1"},
        "spec": {
            "serviceAccountName": PLUGIN,
            "nodeName": "gpu-1",
            "containers": [{"name": "plugin", "image": "example.invalid/hami"}],
        },
    }
    ok(admin.post(pod_path(NAMESPACE), pod))
    return Api(cluster, token(admin, NAMESPACE, PLUGIN, "device-plugin-gpu-1"))


# --- forged allocations ------------------------------------------------------------------------


def test_a_tenant_cannot_create_a_pod_with_an_allocation(tenant: Api) -> None:
    for key in ("hami.io/vgpu-devices-to-allocate", "hami.io/bind-time", "hami.io/vgpu-node"):
        body = gpu_pod("forged", metadata={"annotations": {key: FORGED}})
        refused(
            tenant.post(pod_path(TENANT_NS), body),
            f"{RELEASE}-allocations",
            f"annotation(s) {key} are written only by the hami scheduler",
            "system:serviceaccount:tenant:alice",
        )
    # the user's own hints are fine
    hints = {"hami.io/gpu-scheduler-policy": "binpack", "hami.io/use-xpu-uuid": "x"}
    ok(tenant.post(pod_path(TENANT_NS), gpu_pod("hinted", metadata={"annotations": hints})))


def test_a_tenant_cannot_add_change_or_remove_an_allocation(tenant: Api, scheduler: Api) -> None:
    ok(tenant.post(pod_path(TENANT_NS), gpu_pod("mine")))
    path = pod_path(TENANT_NS, "mine")
    refused(
        tenant.patch(path, notes({"hami.io/vgpu-devices-to-allocate": FORGED})),
        "hami.io/vgpu-devices-to-allocate are written only by",
    )
    ok(tenant.patch(path, notes({"team": "ml"})))  # other annotations stay the tenant's
    ok(
        scheduler.patch(
            path, notes({"hami.io/vgpu-node": "gpu-1", "hami.io/bind-phase": "allocating"})
        )
    )
    refused(tenant.patch(path, notes({"hami.io/bind-phase": "success"})), "hami.io/bind-phase")
    refused(tenant.patch(path, notes({"hami.io/vgpu-node": None})), "hami.io/vgpu-node")
    # nor through the status subresource
    status = {**notes({"hami.io/bind-phase": "failed"}), "status": {}}
    refused(tenant.patch(path + "/status", status), "hami.io/bind-phase")


def test_the_policy_protects_exactly_the_keys_the_webhook_does(tenant: Api) -> None:
    """The chart's CEL list and `keys.is_allocation_annotation` agree on every key hami knows
    (and a few a user writes), asked of the real kube-apiserver."""
    known = {v for k, v in vars(keys).items() if k.isupper() and isinstance(v, str) and "/" in v}
    known |= set(keys.VENDOR_DECISION_ANNOTATIONS) | {
        "hami.io/use-xpu-uuid",
        "hami.io/no-use-iluvatar-uuid",
        "hami.io/node-register-Ascend910B",
        "hami.io/Ascend910B-devices-to-allocate",
        "example.com/anything",
    }
    disagree = []
    for i, key in enumerate(sorted(known)):
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"key-{i}", "annotations": {key: "x"}},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
        }
        response = tenant.post(pod_path(TENANT_NS), body)
        if (response.status_code >= 300) != keys.is_allocation_annotation(key):
            disagree.append((key, response.status_code))
    assert not disagree


# --- bypassing the scheduler and isolation env -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "extra", "needle"),
    [
        ("by-node", {"nodeName": "gpu-1"}, "sets spec.nodeName (gpu-1)"),
        ("by-default", {"schedulerName": "default-scheduler"}, "names scheduler default-scheduler"),
        (
            "by-label",
            {"metadata": {"labels": {"hami.io/webhook": "ignore"}}},
            "is labelled hami.io/webhook=ignore",
        ),
    ],
)
def test_a_device_pod_that_bypasses_the_scheduler_is_refused(
    tenant: Api, name: str, extra: dict[str, Any], needle: str
) -> None:
    message = refused(tenant.post(pod_path(TENANT_NS), gpu_pod(name, **extra)), needle)
    assert f"{RELEASE}-device-pods" in message
    assert "labelling it hami.io/webhook=ignore" in message or "labelling the namespace" in message
    # the admin's relaxation: a namespace labelled hami.io/webhook=ignore
    ok(tenant.post(pod_path(RELAXED_NS), gpu_pod(name, **extra)))


@pytest.mark.parametrize(
    "variable",
    [
        "CUDA_DISABLE_CONTROL",
        "CUDA_DEVICE_MEMORY_LIMIT_0",
        "CUDA_DEVICE_SM_LIMIT",
        "CUDA_DEVICE_MEMORY_SHARED_CACHE",
    ],
)
def test_isolation_env_in_a_device_container_is_refused(tenant: Api, variable: str) -> None:
    name = variable.lower().replace("_", "-")
    refused(
        tenant.post(pod_path(TENANT_NS), gpu_pod(name, env={variable: "true"})),
        "container(s) cuda set isolation env",
    )
    plain = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"plain-{name}"},
        "spec": {
            "containers": [{"name": "c", "image": "x", "env": [{"name": variable, "value": "1"}]}]
        },
    }
    ok(tenant.post(pod_path(TENANT_NS), plain))  # no device: none of our business
    ok(tenant.post(pod_path(RELAXED_NS), gpu_pod(name, env={variable: "true"})))


@pytest.mark.parametrize("prefix", [None, "CUDA_DEVICE_"])
def test_env_from_without_a_safe_prefix_is_refused(tenant: Api, prefix: str | None) -> None:
    """envFrom carries whatever keys its ConfigMap has (now or after admission): only a prefix
    that no isolation variable starts with lets it into a device container."""
    name = f"env-from-{'none' if prefix is None else 'cuda'}"
    pod = gpu_pod(name)
    source: dict[str, Any] = {"configMapRef": {"name": "app"}}
    if prefix is not None:
        source["prefix"] = prefix
    pod["spec"]["containers"][0]["envFrom"] = [source]
    refused(tenant.post(pod_path(TENANT_NS), pod), "container(s) cuda take env from")
    source["prefix"] = "APP_"
    pod["metadata"]["name"] = f"{name}-app"
    ok(tenant.post(pod_path(TENANT_NS), pod))


# --- node agents confined to their node --------------------------------------------------------


def test_the_device_plugin_writes_only_its_own_node(
    cluster: LocalCluster, plugin: Api, admin: Api
) -> None:
    ok(plugin.patch("/api/v1/nodes/gpu-1", notes({"hami.io/node-nvidia-register": "[]"})))
    refused(
        plugin.patch("/api/v1/nodes/gpu-2", notes({"hami.io/node-nvidia-register": "[]"})),
        f"{RELEASE}-node-agents",
        "on node gpu-1 may update only its own node and the pods bound to it, not nodes gpu-2",
    )
    refused(
        plugin.patch("/api/v1/nodes/gpu-1", {"metadata": {"labels": {"gpu": "on"}}}),
        "may change only hami.io/ annotations of nodes gpu-1",
    )
    refused(
        plugin.patch("/api/v1/nodes/gpu-1", notes({"node.alpha.kubernetes.io/ttl": "0"})),
        "not node.alpha.kubernetes.io/ttl",
    )
    refused(plugin.patch("/api/v1/nodes/gpu-1", {"spec": {"unschedulable": True}}), "spec")
    # a token that names no node (not bound to the plugin's pod) writes nothing
    unbound = Api(cluster, token(admin, NAMESPACE, PLUGIN))
    refused(
        unbound.patch("/api/v1/nodes/gpu-1", notes({"hami.io/node-nvidia-register": "[]"})),
        "names no node",
    )


def bind(scheduler: Api, name: str, node: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }
    ok(scheduler.post(pod_path(TENANT_NS, name) + "/binding", body))


def test_the_legitimate_path_and_the_plugin_confined_to_its_pods(
    tenant: Api, scheduler: Api, plugin: Api
) -> None:
    """Webhook-routed pod → /filter's decision → lock → Binding → Allocate's write-back →
    lock release, each as the account that does it; the plugin cannot touch a pod elsewhere."""
    for name, node in (("here", "gpu-1"), ("there", "gpu-2")):
        ok(tenant.post(pod_path(TENANT_NS), gpu_pod(name)))
        decision = {
            "hami.io/vgpu-node": node,
            "hami.io/vgpu-time": "1755757240",
            "hami.io/vgpu-devices-to-allocate": "GPU-a,NVIDIA,3000,0:;",
            "hami.io/vgpu-devices-allocated": "GPU-a,NVIDIA,3000,0:;",
            "hami.io/bind-time": "1755757240",
            "hami.io/bind-phase": "allocating",
        }
        ok(scheduler.patch(pod_path(TENANT_NS, name), notes(decision)))
        lock = {"hami.io/mutex.lock": f"2026-08-21T06:20:40Z,{TENANT_NS},{name}"}
        ok(scheduler.patch(f"/api/v1/nodes/{node}", notes(lock)))
        bind(scheduler, name, node)
    ok(
        scheduler.patch(
            "/api/v1/nodes/gpu-2",
            notes({"hami.io/node-handshake": "Requesting_2026-08-21 06:20:40"}),
        )
    )
    refused(
        scheduler.patch("/api/v1/nodes/gpu-2", {"metadata": {"labels": {"x": "y"}}}),
        f"{RELEASE}-scheduler-nodes",
        "writes only the node lock and handshake annotations of node gpu-2",
    )
    refused(
        scheduler.patch("/api/v1/nodes/gpu-2", notes({"hami.io/node-nvidia-register": "[]"})),
        "not hami.io/node-nvidia-register",
    )
    done = {"hami.io/vgpu-devices-to-allocate": ";", "hami.io/bind-phase": "success"}
    ok(plugin.patch(pod_path(TENANT_NS, "here"), notes(done)))
    ok(plugin.patch("/api/v1/nodes/gpu-1", notes({"hami.io/mutex.lock": None})))
    refused(
        plugin.patch(pod_path(TENANT_NS, "there"), notes(done)),
        "not pods there (on node gpu-2)",
    )
    refused(
        plugin.patch("/api/v1/nodes/gpu-2", notes({"hami.io/mutex.lock": None})), "not nodes gpu-2"
    )
    refused(
        plugin.patch(pod_path(TENANT_NS, "here"), {"metadata": {"labels": {"x": "y"}}}),
        "may change only hami.io/ annotations of pods here",
    )


def _pod_of(workload: dict[str, Any], name: str) -> dict[str, Any]:
    """A Deployment's or DaemonSet's pod, as its controller would create it (no account, no
    priority class: this namespace has neither, and Pod Security does not look at them)."""
    spec = dict(workload["spec"]["template"]["spec"])
    for field in ("serviceAccountName", "priorityClassName"):
        spec.pop(field, None)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


@pytest.mark.parametrize("enforce", ["privileged", "restricted"])
def test_pod_security_labels_on_the_charts_namespace(admin: Api, enforce: str) -> None:
    """`podSecurity.createNamespace`: kube-apiserver's Pod Security admission, with the labels
    the chart renders, admits the device-plugin pod at `privileged` (and warns that it is not
    `restricted`), and admits the scheduler pod at `restricted` while refusing the plugin's
    (docs/security.md: why the namespace is `privileged`)."""
    namespace = f"hami-psa-{enforce}"
    docs = render(
        None,
        [
            "--set",
            "podSecurity.createNamespace=true",
            "--set",
            f"podSecurity.enforce={enforce}",
            "--set",
            f"namespaceOverride={namespace}",
        ],
    )
    (created,) = [d for d in docs if d["kind"] == "Namespace"]
    ok(admin.post("/api/v1/namespaces", created))
    plugin = _pod_of(find(docs, "DaemonSet", f"{RELEASE}-device-plugin"), "plugin")
    scheduler = _pod_of(find(docs, "Deployment", f"{RELEASE}-scheduler"), "scheduler")
    path = f"/api/v1/namespaces/{namespace}/pods?dryRun=All"
    answer = admin.post(path, scheduler)
    ok(answer)
    assert "PodSecurity" not in answer.headers.get("warning", ""), answer.headers
    answer = admin.post(path, plugin)
    if enforce == "privileged":
        ok(answer)
        warning = answer.headers.get("warning", "")  # warn=restricted reports it
        assert "would violate PodSecurity" in warning and "restricted" in warning, warning
        assert "hostPID=true" in warning, warning
    else:
        refused(answer, 'violates PodSecurity "restricted', "privileged", "hostPID")
