"""DRA devices and allocations on the web UI's pages and API, next to extender ones: a DRA
node's published devices are its devices, a DRA pod's allocated claims its slices
(hami.core.dra.placement over the ResourceClaims and ResourceSlices the live source lists)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from hami.config import load_config
from hami.core.dra import names
from hami.draview import CLAIMS, SLICES
from hami.k8s.api import NODES, PODS, KubeAPIError
from hami.k8s.fake import FakeKube, node_manifest
from hami.vendors import registry
from hami.webui.app import WebUI, create_app
from hami.webui.history import History
from hami.webui.livesource import KubeSource
from hami.webui.simsource import SimSource
from tests.builders import container, dra_claim, dra_slice, placed_pod

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SETTINGS = load_config(EXAMPLES / "config.yaml")
VENDORS = registry.build(SETTINGS)
T4 = '[{"id":"GPU-0","count":10,"devmem":15360,"devcore":100,"type":"NVIDIA Tesla T4","health":true}]'


def dra_pod(name: str, node: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {
            "nodeName": node,
            "resourceClaims": [{"name": "gpu-0", "resourceClaimTemplateName": "hami-gpu-x"}],
            "containers": [
                {"name": "main", "image": "x", "resources": {"claims": [{"name": "gpu-0"}]}}
            ],
        },
        "status": {
            "phase": "Running",
            "resourceClaimStatuses": [{"name": "gpu-0", "resourceClaimName": f"{name}-gpu-0-x"}],
        },
    }


async def mixed() -> FakeKube:
    """One extender node with a placed pod, one DRA node with an allocated claim."""
    fake = FakeKube()
    await fake.create(NODES, node_manifest("gpu-1", {"hami.io/node-nvidia-register": T4}))
    c = container("c", {"nvidia.com/gpu": 1})
    await fake.create(
        PODS, placed_pod("ext", "gpu-1", "GPU-0,NVIDIA,1000,10:;", c, namespace="ml"), "ml"
    )
    dra_node: dict[str, Any] = node_manifest("dra-1", {})
    dra_node["metadata"]["labels"] = {names.DRA_NODE_LABEL: "true"}
    await fake.create(NODES, dra_node)
    await fake.create(SLICES, dra_slice("dra-1", "GPU-D0", minor=0))
    await fake.create(PODS, dra_pod("p1", "dra-1"), "ml")
    await fake.create(CLAIMS, dra_claim("p1", "dra-1", "1Gi", "30"), "ml")
    return fake


async def test_dra_devices_and_claims_next_to_extender_ones() -> None:
    fake = await mixed()
    app = create_app(WebUI(KubeSource(fake, VENDORS, SETTINGS, ttl=0), History(interval=0)))
    with TestClient(app) as client:
        summary = client.get("/api/v1/summary").json()
        assert summary["devices"] == 2 and summary["pods_placed"] == 2
        assert summary["memory_allocated_mib"] == 1000 + 1024
        node = client.get("/api/v1/nodes/dra-1").json()
        (device,) = node["devices"]
        assert device["uuid"] == "GPU-D0" and device["mode"] == "dra"
        assert device["memory_mib"] == 40 * 1024 and device["memory_allocated_mib"] == 1024
        assert device["cores_allocated"] == 30
        assert device["pods"] == [
            {"pod": "ml/p1", "container": "main", "memory_mib": 1024, "cores": 30}
        ]
        uuids = {d["uuid"] for d in client.get("/api/v1/devices").json()["devices"]}
        assert uuids == {"GPU-0", "GPU-D0"}
        pod = client.get("/api/v1/pods/ml/p1").json()
        assert pod["node"] == "dra-1" and pod["memory_mib"] == 1024 and pod["cores"] == 30
        assert pod["slices"][0]["container"] == "main"
        for page in ("/", "/nodes/dra-1", "/accelerators", "/workloads"):
            html = client.get(page).text
            assert "GPU-D0" in html or "dra-1" in html, page
        assert "ml/p1" in client.get("/workloads").text or "p1" in client.get("/workloads").text
        # a claim released: its device is free again (the DRA state is read with each snapshot)
        client.portal.call(fake.delete, CLAIMS, "p1-gpu-0-x", "ml")  # type: ignore[union-attr]
        node = client.get("/api/v1/nodes/dra-1").json()
        assert node["devices"][0]["memory_allocated_mib"] == 0


async def test_what_if_never_places_an_extender_pod_on_a_dra_node() -> None:
    fake = await mixed()
    source = KubeSource(fake, VENDORS, SETTINGS, ttl=0)
    snapshot = await source.snapshot()
    assert snapshot.dra_nodes == frozenset({"dra-1"})
    assert "dra-1" not in snapshot.node_names and "gpu-1" in snapshot.node_names


async def test_no_dra_api_leaves_the_ui_as_it_was() -> None:
    fake = FakeKube()
    await fake.create(NODES, node_manifest("gpu-1", {"hami.io/node-nvidia-register": T4}))
    snapshot = await KubeSource(fake, VENDORS, SETTINGS, ttl=0).snapshot()
    assert snapshot.dra_nodes == frozenset() and not snapshot.notices


async def test_claims_refused_is_a_notice_and_the_rest_works() -> None:
    fake = await mixed()
    fake.fail_next("list", KubeAPIError("resourceclaims is forbidden", 403), CLAIMS)
    snapshot = await KubeSource(fake, VENDORS, SETTINGS, ttl=0).snapshot()
    assert any("DRA allocations not shown" in n for n in snapshot.notices)
    assert snapshot.pod("ml", "ext") is not None and snapshot.pod("ml", "p1") is None


async def test_sim_files_with_slices_and_claims(tmp_path: Path) -> None:
    import yaml

    node = node_manifest("dra-1", {})
    docs = [
        {"kind": "Node", **node},
        {"kind": "ResourceSlice", **dra_slice("dra-1", "GPU-D0", minor=0)},
        {"kind": "Pod", **dra_pod("p1", "dra-1")},
        {"kind": "ResourceClaim", **dra_claim("p1", "dra-1", "2Gi", "10")},
    ]
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(yaml.safe_dump_all(docs))
    snapshot = await SimSource(cluster, None, VENDORS, SETTINGS).snapshot()
    pod = snapshot.pod("ml", "p1")
    assert pod is not None and pod.node == "dra-1" and snapshot.dra_nodes == {"dra-1"}
    (state,) = snapshot.view.states()
    assert state.usage[0].usedmem == 2048 and state.usage[0].usedcores == 10


# --- Pending DRA pods: claims not allocated, or not created yet --------------------------------


def waiting_pod(
    name: str,
    *,
    claim: str | None = None,
    template: str = "hami-gpu-abc123",
    annotations: dict[str, str] | None = None,
    message: str = "",
) -> dict[str, Any]:
    """A Pending pod in ``ml`` with one claim ``gpu-0`` from ``template``; ``claim``: the name
    of the ResourceClaim made for it (None: not made yet); ``message``: kube-scheduler's."""
    pod = dra_pod(name, "")
    del pod["spec"]["nodeName"]
    pod["spec"]["resourceClaims"][0]["resourceClaimTemplateName"] = template
    pod["metadata"]["annotations"] = annotations or {}
    status: dict[str, Any] = {"phase": "Pending"}
    if claim is not None:
        status["resourceClaimStatuses"] = [{"name": "gpu-0", "resourceClaimName": claim}]
    if message:
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
            }
        ]
    pod["status"] = status
    return pod


def waiting_claim(
    pod: str, memory: str, cores: int, device_class: str = names.DEVICE_CLASS
) -> dict[str, Any]:
    """``pod``'s unallocated claim asking one device with ``memory`` and ``cores``."""
    claim = dra_claim(pod, "", memory, str(cores))
    del claim["status"]
    request = {
        "name": "gpu",
        "exactly": {
            "deviceClassName": device_class,
            "count": 1,
            "capacity": {"requests": {"memory": memory, "cores": str(cores)}},
        },
    }
    claim["spec"] = {"devices": {"requests": [request]}}
    return claim


SCHEDULER_SAYS = "0/2 nodes are available: 1 cannot allocate all claims."


async def waiting() -> FakeKube:
    """`mixed` (p1 holds 1 GiB and 30 cores of dra-1's 40 GiB GPU) and five Pending DRA pods."""
    fake = await mixed()
    await fake.create(PODS, waiting_pod("no-claim"), "ml")
    await fake.create(PODS, waiting_pod("big", claim="big-gpu-0-x"), "ml")
    await fake.create(CLAIMS, waiting_claim("big", "80Gi", 10), "ml")
    await fake.create(PODS, waiting_pod("cores", claim="cores-gpu-0-x"), "ml")
    await fake.create(CLAIMS, waiting_claim("cores", "1Gi", 80), "ml")
    fits = waiting_pod("fits", claim="fits-gpu-0-x", message=SCHEDULER_SAYS)
    await fake.create(PODS, fits, "ml")
    await fake.create(CLAIMS, waiting_claim("fits", "1Gi", 10), "ml")
    picky = waiting_pod(
        "picky", annotations={"nvidia.com/use-gpuuuid": "GPU-NONE"}, claim="picky-gpu-0-x"
    )
    await fake.create(PODS, picky, "ml")
    await fake.create(CLAIMS, waiting_claim("picky", "1Gi", 10), "ml")
    # not GPU pods: another driver's template, another class's claim; a finished pod
    await fake.create(PODS, waiting_pod("nic", template="sriov-nic"), "ml")
    await fake.create(PODS, waiting_pod("fpga", claim="fpga-gpu-0-x", template="fpga"), "ml")
    await fake.create(CLAIMS, waiting_claim("fpga", "1Gi", 10, "fpga.example.com"), "ml")
    done = waiting_pod("done")
    done["status"]["phase"] = "Failed"
    await fake.create(PODS, done, "ml")
    return fake


def _causes(client: TestClient, **params: str) -> dict[str, list[dict[str, Any]]]:
    causes = client.get("/api/v1/pending", params=params).json()["causes"]
    return {c["cause"]: c["pods"] for c in causes}


async def test_pending_dra_pods_grouped_by_cause_with_explains_reasons() -> None:
    from hami.core.dra.explain import explain_pod
    from hami.webui import drapending

    fake = await waiting()
    app = create_app(WebUI(KubeSource(fake, VENDORS, SETTINGS, ttl=0), History(interval=0)))
    with TestClient(app) as client:
        causes = _causes(client)
        named = {c: sorted(p["name"] for p in pods) for c, pods in causes.items()}
        assert named == {
            drapending.NO_CLAIM: ["no-claim"],
            drapending.NO_CAPACITY: ["big", "cores"],
            drapending.SCHEDULER: ["fits"],
            drapending.NO_DEVICE: ["picky"],
        }
        big, cores = causes[drapending.NO_CAPACITY]
        assert "81920 MiB is more than any device has (40960 MiB)" in big["summary"]
        assert "no node has a device with 1024 MiB and 80 cores free" in cores["summary"]
        assert "the most free on any device: 39936 MiB, 70 cores" in cores["summary"]
        assert causes[drapending.SCHEDULER][0]["summary"] == f"kube-scheduler: {SCHEDULER_SAYS}"
        assert causes[drapending.NO_CLAIM][0]["summary"] == "claim gpu-0: not created yet"
        assert big["hint"] == drapending.HINTS[drapending.NO_CAPACITY]
        assert big["explain"] == {
            "mode": "dra",
            "cause": drapending.NO_CAPACITY,
            "summary": big["summary"],
            "hint": big["hint"],
        }
        # a pod's own explanation adds `hami explain`'s lines for it, from the same claims
        pod = await fake.get(PODS, "big", "ml")
        claims = (await fake.list(CLAIMS)).items
        slices = (await fake.list(SLICES)).items
        lines = client.get("/api/v1/pods/ml/big/explain").json()["lines"]
        assert lines == explain_pod(pod, claims, slices)
        assert lines[0] == "ml/big uses DRA claims, not scheduled"
        fits = client.get("/api/v1/pods/ml/fits/explain").json()["lines"]
        assert fits[-1] == f"kube-scheduler: {SCHEDULER_SAYS}"

        summary = client.get("/api/v1/summary").json()
        assert summary["pods_pending"] == 5 and summary["pods_placed"] == 2
        (ml,) = client.get("/api/v1/namespaces").json()["namespaces"]
        assert ml["pods_pending"] == 5 and ml["pods_placed"] == 2
        pending = client.get("/api/v1/pods", params={"phase": "pending"}).json()["pods"]
        assert sorted(p["name"] for p in pending) == ["big", "cores", "fits", "no-claim", "picky"]
        assert all(p["pending"] and p["node"] is None for p in pending)
        # filters: the NVIDIA vendor (DRA devices') keeps them; another namespace does not
        assert sum(len(p) for p in _causes(client, vendor="NVIDIA").values()) == 5
        assert _causes(client, namespace="other") == {}

        html = client.get("/pending").text
        assert 'data-k="pending_total">5<' in html
        assert f'data-cause="{drapending.NO_CLAIM}"' in html and "ml/no-claim" in html
        overview = client.get("/").text
        assert "ml/big" in overview and "ml/no-claim" in overview and "ml/nic" not in overview
        assert client.get("/api/v1/pods/ml/nic").status_code == 404

        why = client.get("/api/v1/pods/ml/cores/explain").json()
        assert why["cause"] == drapending.NO_CAPACITY and why["lines"][1].startswith("  gpu-0")
        page = client.get("/pods/ml/no-claim").text
        assert "Why it is pending" in page and "no claim yet (template hami-gpu-abc123" in page

        # kube-scheduler allocates the claim: the pod leaves Pending and holds its device
        client.portal.call(fake.delete, CLAIMS, "fits-gpu-0-x", "ml")  # type: ignore[union-attr]
        client.portal.call(fake.create, CLAIMS, dra_claim("fits", "dra-1", "1Gi", "10"), "ml")  # type: ignore[union-attr]
        assert "fits" not in str(_causes(client))
        held = client.get("/api/v1/pods/ml/fits").json()
        assert held["pending"] is False and held["node"] == "dra-1" and held["memory_mib"] == 1024


async def test_pending_dra_pods_without_slices_or_claims() -> None:
    """A cluster that serves resource.k8s.io but has no slice or claim yet: the pod waits for
    its claim; where ResourceClaims cannot be read, no DRA pod is listed (a notice says so)."""
    from hami.webui import drapending

    fake = FakeKube()
    await fake.create(PODS, waiting_pod("first"), "ml")
    snapshot = await KubeSource(fake, VENDORS, SETTINGS, ttl=0).snapshot()
    (pod,) = snapshot.pods
    assert pod.pending and pod.dra is not None and pod.placed is None
    why = drapending.DraExplainer(snapshot.dra).explain(pod.dra)
    assert why.cause == drapending.NO_CLAIM and why.to_dict()["hint"] == why.hint
    claim = waiting_claim("first", "1Gi", 10)
    await fake.create(CLAIMS, claim, "ml")
    fake.put(PODS, waiting_pod("first", claim="first-gpu-0-x"))
    snapshot = await KubeSource(fake, VENDORS, SETTINGS, ttl=0).snapshot()
    why = drapending.DraExplainer(snapshot.dra).explain(snapshot.pods[0].dra or {})
    assert why.cause == drapending.NO_DEVICE
    fake.fail_next("list", KubeAPIError("resourceclaims is forbidden", 403), CLAIMS)
    snapshot = await KubeSource(fake, VENDORS, SETTINGS, ttl=0).snapshot()
    assert snapshot.pods == () and snapshot.dra is None


async def test_claim_names_are_looked_up_in_the_pods_namespace() -> None:
    """A namesake claim in another namespace neither hides nor stands in for the pod's own."""
    from hami.webui import drapending
    from hami.webui.snapshot import DraState

    pod = waiting_pod("w", claim="w-gpu-0-x")
    elsewhere = dra_claim("w", "dra-1", "1Gi", "10")
    elsewhere["metadata"]["namespace"] = "team-b"
    explainer = drapending.DraExplainer(
        DraState([elsewhere], [dra_slice("dra-1", "GPU-D0", minor=0)])
    )
    why = explainer.explain(pod)
    assert why.cause == drapending.NO_CLAIM
    own = waiting_claim("w", "40Gi", 10)
    explainer = drapending.DraExplainer(
        DraState([own, elsewhere], [dra_slice("dra-1", "GPU-D0", minor=0)])
    )
    why = explainer.explain(pod)
    # the other namespace's allocation counts against the device: 39 GiB left, 40 asked
    assert why.cause == drapending.NO_CAPACITY and "39936 MiB" in why.summary
    assert any("(w-gpu-0-x): not allocated" in line for line in why.lines)


async def test_sim_dra_allocations_and_pending_pods(tmp_path: Path) -> None:
    import yaml

    from hami.webui.simsource import StaticSource

    docs = [
        {"kind": "Node", **node_manifest("dra-1", {})},
        {"kind": "ResourceSlice", **dra_slice("dra-1", "GPU-D0", minor=0)},
        {"kind": "Pod", **dra_pod("p1", "dra-1")},
        {"kind": "ResourceClaim", **dra_claim("p1", "dra-1", "2Gi", "10")},
        {"kind": "Pod", **waiting_pod("w", claim="w-gpu-0-x")},
        {"kind": "ResourceClaim", **waiting_claim("w", "50Gi", 10)},
    ]
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(yaml.safe_dump_all(docs))
    source = SimSource(cluster, None, VENDORS, SETTINGS)
    with TestClient(create_app(WebUI(source, History(interval=0)))) as client:
        doc = client.get("/api/v1/dra/allocations")
        assert doc.status_code == 200
        (allocation,) = doc.json()["allocations"]
        assert allocation["pod"] == "p1" and allocation["memory_bytes"] == 2 * 1024**3
        assert doc.json()["devices"][0]["used_cores"] == 10
        (cause,) = client.get("/api/v1/pending").json()["causes"]
        assert cause["pods"][0]["name"] == "w" and "51200 MiB" in cause["pods"][0]["summary"]
    empty = tmp_path / "plain.yaml"
    empty.write_text(yaml.safe_dump_all([{"kind": "Node", **node_manifest("gpu-1", {})}]))
    plain = SimSource(empty, None, VENDORS, SETTINGS)
    with TestClient(create_app(WebUI(plain, History(interval=0)))) as client:
        doc = client.get("/api/v1/dra/allocations").json()
        assert doc == {"allocations": [], "devices": [], "overcommitted": []}
    static = StaticSource(replace(await plain.snapshot(), dra=None), VENDORS)
    with TestClient(create_app(WebUI(static, History(interval=0)))) as client:
        assert client.get("/api/v1/dra/allocations").status_code == 404


async def test_a_claim_asking_hamis_class_makes_a_gpu_pod_whatever_its_template() -> None:
    """A claim written for HAMi-DRA (its own template, hami's DeviceClass) is hami's too; with
    room on the device and no word from kube-scheduler yet, it waits for kube-scheduler."""
    from hami.webui import drapending
    from hami.webui.decode import build_snapshot
    from hami.webui.dradecode import mappings
    from hami.webui.snapshot import DraState

    pod = waiting_pod("own", claim="own-gpu-0-x", template="my-template")
    dra = DraState([waiting_claim("own", "1Gi", 10)], [dra_slice("dra-1", "GPU-D0", minor=0)])
    nodes = [node_manifest("dra-1", {})]
    snapshot = build_snapshot(nodes, [pod], VENDORS, SETTINGS, dra=dra)
    (entry,) = snapshot.pods
    assert entry.pending and entry.dra is pod
    why = drapending.DraExplainer(snapshot.dra).explain(pod)
    assert why.cause == drapending.SCHEDULER and "has not said why" in why.summary
    assert mappings("not a list") == [] and mappings([1, {"a": 1}]) == [{"a": 1}]


def test_a_burst_of_one_shape_is_judged_once(monkeypatch: Any) -> None:
    """Pods of one request shape and annotations share the capacity reasons (the Pending list
    of a burst parses no quantity per pod); their summaries are the same."""
    from hami.core.dra import records
    from hami.webui import drapending
    from hami.webui.snapshot import DraState

    pods = [waiting_pod(f"w{i}", claim=f"w{i}-gpu-0-x") for i in range(20)]
    claims = [waiting_claim(f"w{i}", "50Gi", 10) for i in range(20)]
    calls = []
    judge = records.why_unallocatable

    def counted(*args: Any) -> list[str]:
        calls.append(args)
        return judge(*args)

    monkeypatch.setattr(records, "why_unallocatable", counted)
    explainer = drapending.DraExplainer(DraState(claims, [dra_slice("dra-1", "GPU-D0", minor=0)]))
    whys = {explainer.explain(p, lines=False) for p in pods}
    assert len(calls) == 1 and len(whys) == 1
    (why,) = whys
    assert why.cause == drapending.NO_CAPACITY and why.lines == ()
