"""`helm lint` and `helm template` over the default values and tests/chart/values/*.yaml."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.chart.helm import (
    CHART,
    NAMESPACE,
    RELEASE,
    ROOT,
    VALUES,
    find,
    helm,
    kube_scheduler_config,
    render,
    template_args,
)

pytestmark = pytest.mark.e2e  # needs the helm binary that `make helm-bin` builds

DASHBOARD = ROOT / "deploy" / "grafana" / "hami-dashboard.json"
NVIDIA = [
    "nvidia.com/gpu",
    "nvidia.com/gpumem",
    "nvidia.com/gpumem-percentage",
    "nvidia.com/gpucores",
    "nvidia.com/priority",
]


@pytest.mark.parametrize("name", VALUES)
def test_lint(name: str) -> None:
    values = VALUES[name]
    result = helm("lint", str(CHART), "--strict", *(["-f", str(values)] if values else []))
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("name", VALUES)
def test_template_renders_valid_rbac(name: str) -> None:
    docs = render(VALUES[name])
    for doc in docs:
        if doc["kind"] in ("ClusterRole", "Role"):
            for rule in doc["rules"]:
                for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                    assert "*" not in rule.get(field, []), (doc["metadata"]["name"], rule)
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    pods = [d for d in docs if d["kind"] in ("Deployment", "DaemonSet", "Job")]
    for workload in pods:
        assert workload["spec"]["template"]["spec"]["serviceAccountName"] in accounts


def test_default_values() -> None:
    docs = render(None)
    deploy = find(docs, "Deployment", f"{RELEASE}-scheduler")
    assert deploy["spec"]["replicas"] == 1
    containers = {c["name"]: c for c in deploy["spec"]["template"]["spec"]["containers"]}
    assert containers["kube-scheduler"]["image"].startswith("registry.k8s.io/kube-scheduler:v1.")
    extender = containers["vgpu-scheduler-extender"]["command"]
    assert extender[:2] == ["hami", "scheduler"] and "--leader-elect" in extender
    assert f"--lease-namespace={NAMESPACE}" in extender
    config = kube_scheduler_config(docs)
    assert config["profiles"] == [{"schedulerName": "hami-scheduler"}]
    assert config["leaderElection"]["resourceNamespace"] == NAMESPACE
    (ext,) = config["extenders"]
    assert ext["urlPrefix"] == f"https://{RELEASE}-scheduler.{NAMESPACE}.svc:8444"
    assert [r["name"] for r in ext["managedResources"]] == NVIDIA
    assert all(r["ignoredByScheduler"] for r in ext["managedResources"])
    service = find(docs, "Service", f"{RELEASE}-scheduler")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert (ports["monitor"]["port"], ports["monitor"]["targetPort"]) == (31993, "metrics")
    # the monitor port is plain-HTTP /metrics on the extender's --metrics-bind-address, as
    # HAMi's (31993 -> 9395); /metrics also stays on the TLS port
    assert ports["monitor"]["targetPort"] == "metrics"
    assert "--metrics-bind-address=:9395" in extender
    extender_ports = containers["vgpu-scheduler-extender"]["ports"]
    assert {"name": "metrics", "containerPort": 9395} in extender_ports
    (hook,) = find(docs, "MutatingWebhookConfiguration", f"{RELEASE}-webhook")["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    ignore = {"key": "hami.io/webhook", "operator": "NotIn", "values": ["ignore"]}
    assert ignore in hook["namespaceSelector"]["matchExpressions"]
    assert ignore in hook["objectSelector"]["matchExpressions"]
    jobs = [d for d in docs if d["kind"] == "Job"]
    assert {j["metadata"]["annotations"]["helm.sh/hook"] for j in jobs} == {
        "pre-install,pre-upgrade",
        "post-install,post-upgrade",
    }
    ds = find(docs, "DaemonSet", f"{RELEASE}-device-plugin")["spec"]["template"]["spec"]
    assert ds["nodeSelector"] == {"gpu": "on"}
    assert [c["name"] for c in ds["containers"]] == ["device-plugin", "vgpu-monitor"]
    assert ds["initContainers"][0]["name"] == "install-libvgpu"
    paths = {v["hostPath"]["path"] for v in ds["volumes"] if "hostPath" in v}
    assert paths == {"/var/lib/kubelet/device-plugins", "/usr/local/vgpu", "/var/run/cdi"}
    device_config = yaml.safe_load(
        find(docs, "ConfigMap", f"{RELEASE}-scheduler-device")["data"]["device-config.yaml"]
    )
    assert device_config["nvidia"]["deviceSplitCount"] == 10
    node_config = json.loads(
        find(docs, "ConfigMap", f"{RELEASE}-device-plugin")["data"]["config.json"]
    )
    assert node_config["nodeconfig"][0]["operatingmode"] == "hami-core"


def test_device_config_loads_in_hami() -> None:
    from hami.config import parse_config

    docs = render(None)
    text = find(docs, "ConfigMap", f"{RELEASE}-scheduler-device")["data"]["device-config.yaml"]
    config = parse_config(yaml.safe_load(text), "chart")
    assert config.scheduler_name == "hami-scheduler"


def test_webhook_off() -> None:
    docs = render(VALUES["webhook-off"])
    kinds = {d["kind"] for d in docs}
    assert "MutatingWebhookConfiguration" not in kinds and "Job" not in kinds
    ext = kube_scheduler_config(docs)["extenders"][0]
    assert ext["urlPrefix"].startswith("http://") and ext["enableHTTPS"] is False
    deploy = find(docs, "Deployment", f"{RELEASE}-scheduler")
    command = deploy["spec"]["template"]["spec"]["containers"][1]["command"]
    assert not any(a.startswith("--cert-file") for a in command)


def test_ha_three_replicas() -> None:
    docs = render(VALUES["ha"])
    deploy = find(docs, "Deployment", f"{RELEASE}-scheduler")
    assert deploy["spec"]["replicas"] == 3
    assert deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 2
    assert "podAntiAffinity" in deploy["spec"]["template"]["spec"]["affinity"]
    (hook,) = find(docs, "MutatingWebhookConfiguration", f"{RELEASE}-webhook")["webhooks"]
    assert hook["failurePolicy"] == "Fail"
    assert kube_scheduler_config(docs)["leaderElection"]["leaderElect"] is True


@pytest.mark.security
def test_extender_mtls_cluster_ip_and_memory_limits_by_default() -> None:
    """docs/security.md: /filter and /bind on a listener of their own that only kube-scheduler's
    client certificate reaches, Services without node ports, memory limits."""
    docs = render(None)
    deploy = find(docs, "Deployment", f"{RELEASE}-scheduler")
    containers = {c["name"]: c for c in deploy["spec"]["template"]["spec"]["containers"]}
    extender = containers["vgpu-scheduler-extender"]["command"]
    (ext,) = kube_scheduler_config(docs)["extenders"]
    service = find(docs, "Service", f"{RELEASE}-scheduler")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert service["spec"]["type"] == "ClusterIP"  # nothing on the nodes' ports by default
    assert ports["http"]["port"] == 443 and "nodePort" not in ports["http"]
    assert ports["extender"] == {
        "name": "extender",
        "port": 8444,
        "targetPort": "extender",
        "protocol": "TCP",
    }
    assert ports["monitor"]["port"] == 31993 and "nodePort" not in ports["monitor"]
    nodeport = render(None, ["--set", "scheduler.service.type=NodePort"])
    service = find(nodeport, "Service", f"{RELEASE}-scheduler")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert (ports["http"]["port"], ports["http"]["nodePort"]) == (443, 31998)
    assert (ports["monitor"]["port"], ports["monitor"]["nodePort"]) == (31993, 31993)
    # mTLS (docs/security.md): kube-scheduler presents its client certificate; the extender
    # listener requires one from that certificate's own CA, the webhook stays on 8443
    assert ext["tlsConfig"] == {
        "caFile": "/tls/ca.crt",
        "certFile": "/tls-client/tls.crt",
        "keyFile": "/tls-client/tls.key",
    }
    assert "--extender-bind=0.0.0.0:8444" in extender
    assert "--client-ca-file=/tls-client-ca/ca.crt" in extender
    volumes = {v["name"]: v for v in deploy["spec"]["template"]["spec"]["volumes"]}
    client_secret = f"{RELEASE}-scheduler-client-tls"
    assert volumes["client-tls"]["secret"] == {"secretName": client_secret}
    assert volumes["client-ca"]["secret"] == {  # the extender gets the CA, not the key
        "secretName": client_secret,
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    mounts = {m["name"] for m in containers["vgpu-scheduler-extender"]["volumeMounts"]}
    assert "client-ca" in mounts and "client-tls" not in mounts
    (pre,) = [d for d in docs if d["kind"] == "Job" and d["metadata"]["name"].endswith("-pre")]
    certgen = pre["spec"]["template"]["spec"]["containers"][0]["command"]
    assert f"--client-secret-name={client_secret}" in certgen
    # memory limits by default
    for name in ("kube-scheduler", "vgpu-scheduler-extender"):
        assert containers[name]["resources"]["limits"]["memory"], name


def test_replicas_ignored_without_leader_election() -> None:
    docs = render(None, ["--set", "scheduler.leaderElect=false", "--set", "scheduler.replicas=3"])
    assert find(docs, "Deployment", f"{RELEASE}-scheduler")["spec"]["replicas"] == 1
    assert not [
        d for d in docs if d["kind"] == "Role" and d["metadata"]["name"].endswith("-scheduler")
    ]
    ext = kube_scheduler_config(docs)["extenders"][0]
    assert ext["urlPrefix"] == "https://127.0.0.1:8444"
    deploy = find(docs, "Deployment", f"{RELEASE}-scheduler")
    (extender,) = [
        c for c in deploy["spec"]["template"]["spec"]["containers"] if c["name"].startswith("vgpu")
    ]
    assert "--extender-bind=127.0.0.1:8444" in extender["command"]  # in the pod only
    service = find(docs, "Service", f"{RELEASE}-scheduler")
    assert "extender" not in {p["name"] for p in service["spec"]["ports"]}


def test_all_vendors_managed() -> None:
    docs = render(VALUES["all-vendors"])
    names = [r["name"] for r in kube_scheduler_config(docs)["extenders"][0]["managedResources"]]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    expected = set(NVIDIA)
    for vendor, cfg in values["devices"].items():
        if vendor != "nvidia":
            expected |= set(cfg["customresources"])
    assert set(names) == expected and len(names) == len(expected)
    assert "huawei.com/Ascend910B4-1-core" in names and "iluvatar.ai/BI-V150.vMem" in names


def test_optional_monitoring_and_cert_manager() -> None:
    docs = render(
        None,
        [
            "--set",
            "prometheus.enabled=true",
            "--set",
            "dashboard.enabled=true",
            "--set",
            "scheduler.certManager.enabled=true",
        ],
    )
    # one ServiceMonitor per Service, each scraping its `monitor` port over plain HTTP
    monitors = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceMonitor"}
    assert set(monitors) == {f"{RELEASE}-scheduler", f"{RELEASE}-device-plugin"}
    for name, component in (
        ("scheduler", "hami-scheduler"),
        ("device-plugin", "hami-device-plugin"),
    ):
        spec = monitors[f"{RELEASE}-{name}"]["spec"]
        selector = spec["selector"]["matchLabels"]
        assert selector["app.kubernetes.io/component"] == component
        selected = [
            d
            for d in docs
            if d["kind"] == "Service" and selector.items() <= d["metadata"]["labels"].items()
        ]
        assert [d["metadata"]["name"] for d in selected] == [
            f"{RELEASE}-scheduler" if name == "scheduler" else f"{RELEASE}-device-plugin-monitor"
        ]
        assert spec["endpoints"] == [
            {"port": "monitor", "path": "/metrics", "scheme": "http", "interval": "30s"}
        ]
        assert "monitor" in {p["name"] for p in selected[0]["spec"]["ports"]}
    dashboard = find(docs, "ConfigMap", f"{RELEASE}-dashboard")["data"]["hami-dashboard.json"]
    assert json.loads(dashboard) == json.loads(DASHBOARD.read_text())
    assert find(docs, "Certificate", f"{RELEASE}-scheduler-serving-cert")
    webhook = find(docs, "MutatingWebhookConfiguration", f"{RELEASE}-webhook")
    assert "cert-manager.io/inject-ca-from" in webhook["metadata"]["annotations"]
    assert not [d for d in docs if d["kind"] == "Job"]


def test_chart_dashboard_is_a_copy_of_deploy_grafana() -> None:
    """helm warns on symlinks in a chart, so the chart holds a real copy; keep them identical
    (`cp deploy/grafana/hami-dashboard.json charts/hami/files/`)."""
    copy = CHART / "files" / "hami-dashboard.json"
    assert not copy.is_symlink()
    assert copy.read_bytes() == DASHBOARD.read_bytes()


@pytest.mark.parametrize("name", VALUES)
def test_template_renders_without_warnings(name: str) -> None:
    values = VALUES[name]
    extra = ["--set", "dashboard.enabled=true", "--set", "prometheus.enabled=true"]
    result = helm(*template_args(values, extra))
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("scheduler.admissionWebhook.failurePolicy=Maybe", "value must be one of 'Ignore', 'Fail'"),
        ("scheduler.replicas=0", "/scheduler/replicas"),
        ("scheduler.defaultSchedulerPolicy.nodeSchedulerPolicy=fast", "nodeSchedulerPolicy"),
        ("devicePlugin.deviceSplitCount=0", "/devicePlugin/deviceSplitCount"),
        ("scheduler.service.schedulerPort=80", "/scheduler/service/schedulerPort"),
        ("resourceName=not a name", "/resourceName"),
        ("global.gpuHookPath=/usr/local gpu", "/global/gpuHookPath"),  # breaks ld.so.preload
    ],
)
def test_schema_rejects(flag: str, message: str) -> None:
    result = helm("template", RELEASE, str(CHART), "--set", flag, check=False)
    assert result.returncode != 0
    assert "don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


def test_a_single_scheduler_without_a_lease_is_recreated_not_rolled() -> None:
    """Without leaderElect nothing keeps two schedulers from deciding for the same GPUs, so a
    rollout (`helm upgrade`) must stop the old pod before the new one starts (issue 24)."""
    docs = render(None, ["--set", "scheduler.leaderElect=false"])
    deploy = find(docs, "Deployment", f"{RELEASE}-scheduler")
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    default = find(render(None), "Deployment", f"{RELEASE}-scheduler")
    assert "strategy" not in default["spec"]  # one replica with a Lease: the new pod waits for it


@pytest.mark.security
def test_network_policies_open_only_the_ports_in_use() -> None:
    """docs/security.md: the extender port only from the scheduler pods (kube-scheduler), the
    webhook/probe and metrics ports from the configured peers, nothing else; a value to turn
    them off."""
    docs = render(None)
    sched = find(docs, "NetworkPolicy", f"{RELEASE}-scheduler")["spec"]
    assert sched["policyTypes"] == ["Ingress"]
    assert sched["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "hami-scheduler"
    ports = [[p["port"] for p in rule["ports"]] for rule in sched["ingress"]]
    assert ports == [["http", 10259], ["metrics"], ["extender"]]
    (peer,) = sched["ingress"][2]["from"]
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "hami-scheduler"
    assert "from" not in sched["ingress"][0]  # kube-apiserver's address is the cluster's
    plugin = find(docs, "NetworkPolicy", f"{RELEASE}-device-plugin")["spec"]
    assert [[p["port"] for p in r["ports"]] for r in plugin["ingress"]] == [["metrics"]]

    scrapers = [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    docs = render(
        None,
        [
            "--set",
            "scheduler.leaderElect=false",
            "--set",
            "devicePlugin.monitor.enabled=false",
            "--set-json",
            f"networkPolicy.metricsFrom={json.dumps(scrapers)}",
        ],
    )
    sched = find(docs, "NetworkPolicy", f"{RELEASE}-scheduler")["spec"]
    assert [[p["port"] for p in r["ports"]] for r in sched["ingress"]] == [
        ["http", 10259],
        ["metrics"],
    ]
    assert sched["ingress"][1]["from"] == scrapers
    assert find(docs, "NetworkPolicy", f"{RELEASE}-device-plugin")["spec"]["ingress"] == []
    off = render(None, ["--set", "networkPolicy.enabled=false"])
    assert not [d for d in off if d["kind"] == "NetworkPolicy"]


@pytest.mark.security
def test_pod_security_labels_on_a_namespace_the_chart_creates() -> None:
    assert not [d for d in render(None) if d["kind"] == "Namespace"]  # helm's own by default
    docs = render(None, ["--set", "podSecurity.createNamespace=true"])
    namespace = find(docs, "Namespace", NAMESPACE)
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"  # the device plugin
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert namespace["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    bad = helm(*template_args(None, ["--set", "podSecurity.enforce=open"]), check=False)
    assert bad.returncode != 0 and "enforce" in bad.stderr


@pytest.mark.security
def test_kube_scheduler_is_restarted_when_its_client_certificate_rotates() -> None:
    """kube-scheduler reads its extender client certificate only at start: the extender watches
    the same Secret's certificate (not the key) and, sharing the pod's process namespace, stops
    kube-scheduler when it changes (docs/security.md)."""
    pod = find(render(None), "Deployment", f"{RELEASE}-scheduler")["spec"]["template"]["spec"]
    assert pod["shareProcessNamespace"] is True
    kube_scheduler, extender = pod["containers"]
    assert "--kube-scheduler-client-cert=/tls-client/tls.crt" in extender["command"]
    mounts = {m["mountPath"]: m["name"] for m in extender["volumeMounts"]}
    theirs = {m["mountPath"]: m["name"] for m in kube_scheduler["volumeMounts"]}
    assert (mounts["/tls-client"], theirs["/tls-client"]) == ("client-cert", "client-tls")
    volumes = {v["name"]: v.get("secret", {}) for v in pod["volumes"]}
    assert volumes["client-cert"]["secretName"] == volumes["client-tls"]["secretName"]
    assert volumes["client-cert"]["items"] == [{"key": "tls.crt", "path": "tls.crt"}]
    off = render(VALUES["webhook-off"])
    pod = find(off, "Deployment", f"{RELEASE}-scheduler")["spec"]["template"]["spec"]
    assert "shareProcessNamespace" not in pod
