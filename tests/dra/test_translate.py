from __future__ import annotations

from typing import Any

import pytest

from hami.core.dra import names
from hami.core.dra.translate import DraMode, TranslateError, claim_spec, shape_of, translate


def _pod(
    limits: dict[str, str], annotations: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "team", "annotations": annotations or {}},
        "spec": {
            "containers": [
                {"name": "side", "image": "x"},
                {"name": "main", "image": "x", "resources": {"limits": {"cpu": "1", **limits}}},
            ],
            **spec,
        },
    }


def test_mode_applies_to_namespaces_and_dra_node_selectors() -> None:
    mode = DraMode(namespaces=frozenset({"team"}))
    assert mode.applies(_pod({}))
    assert not DraMode().applies(_pod({}))
    assert DraMode().applies(_pod({}, nodeSelector={names.DRA_NODE_LABEL: "true"}))


def test_gpu_container_gets_a_template_claim_and_loses_extended_resources() -> None:
    pod = _pod({"nvidia.com/gpu": "1", "nvidia.com/gpumem": "3000", "nvidia.com/gpucores": "30"})
    done = translate(pod, DraMode())
    (template,) = done.templates
    assert template["metadata"]["namespace"] == "team"
    request = template["spec"]["spec"]["devices"]["requests"][0]
    assert request["exactly"]["capacity"]["requests"] == {"memory": "3000Mi", "cores": "30"}
    assert request["exactly"]["deviceClassName"] == names.DEVICE_CLASS
    ops = {op.path: op.value for op in done.patch}
    assert ops["/spec/containers/1/resources"] == {
        "limits": {"cpu": "1"},
        "claims": [{"name": "gpu-1"}],
    }
    assert ops["/spec/resourceClaims"] == [
        {"name": "gpu-1", "resourceClaimTemplateName": template["metadata"]["name"]}
    ]


def test_same_shape_shares_one_template_name() -> None:
    a = translate(_pod({"nvidia.com/gpumem": "1000"}), DraMode()).templates[0]
    b = translate(_pod({"nvidia.com/gpumem": "1000"}), DraMode()).templates[0]
    c = translate(_pod({"nvidia.com/gpumem": "2000"}), DraMode()).templates[0]
    assert a["metadata"]["name"] == b["metadata"]["name"] != c["metadata"]["name"]


def test_annotations_become_cel_and_topology_constraints() -> None:
    annotations = {
        "nvidia.com/use-gpuuuid": "GPU-a,GPU-b",
        "nvidia.com/nouse-gputype": "T4",
        "nvidia.com/numa-bind": "true",
        "hami.io/gpu-scheduler-policy": "topology-aware",
    }
    shape = shape_of({"resources": {"limits": {"nvidia.com/gpu": "2"}}}, annotations)
    assert shape is not None
    devices = claim_spec(shape)["devices"]
    cel = [s["cel"]["expression"] for s in devices["requests"][0]["exactly"]["selectors"]]
    assert cel == [
        'device.attributes["hami-core-gpu.project-hami.io"].uuid in ["GPU-a", "GPU-b"]',
        '!["t4"].exists(t, device.attributes["hami-core-gpu.project-hami.io"].productName'
        ".lowerAscii().contains(t))",
    ]
    assert devices["constraints"] == [
        {"requests": ["gpu"], "distinctAttribute": "hami-core-gpu.project-hami.io/uuid"},
        {"requests": ["gpu"], "matchAttribute": "resource.kubernetes.io/numaNode"},
        {"requests": ["gpu"], "matchAttribute": "hami-core-gpu.project-hami.io/nvlinkGroup"},
    ]


@pytest.mark.parametrize(
    ("limits", "annotations", "message"),
    [
        ({"nvidia.com/gpu": "1"}, {"nvidia.com/use-gpuuuid": 'a"] || true'}, "use-gpuuuid"),
        ({"nvidia.com/gpu": "1"}, {"nvidia.com/use-gputype": ","}, "empty list"),
        ({"nvidia.com/gpu": "1"}, {"nvidia.com/nouse-gputype": "A100)"}, "nouse-gputype"),
        ({"nvidia.com/gpu": "0"}, {}, "must be 1"),
        ({"nvidia.com/gpucores": "120"}, {}, "0–100"),
        ({"nvidia.com/gpumem-percentage": "50"}, {}, "gpumem-percentage"),
        ({"nvidia.com/gpumem": "lots"}, {}, "gpumem"),
    ],
)
def test_bad_requests_are_clear_denials(
    limits: dict[str, str], annotations: dict[str, str], message: str
) -> None:
    with pytest.raises(TranslateError, match=message):
        translate(_pod(limits, annotations), DraMode())


def test_pod_without_gpus_is_untouched() -> None:
    assert translate(_pod({}), DraMode()).patch == ()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"securityContext": {"privileged": True}}, "privileged"),
        ({"env": [{"name": "CUDA_DEVICE_MEMORY_LIMIT_0", "value": "99g"}]}, "CUDA_DEVICE_MEMORY"),
        ({"envFrom": [{"configMapRef": {"name": "app"}}]}, "without a prefix"),
    ],
)
def test_device_containers_cannot_override_their_limits(
    extra: dict[str, Any], message: str
) -> None:
    pod = _pod({"nvidia.com/gpu": "1"})
    pod["spec"]["containers"][1].update(extra)
    with pytest.raises(TranslateError, match=message):
        translate(pod, DraMode())
    pod["spec"]["containers"][1]["envFrom"] = [{"prefix": "APP_", "configMapRef": {"name": "a"}}]
    if "envFrom" in extra:
        assert translate(pod, DraMode()).patch


def test_pods_labelled_ignore_are_not_translated() -> None:
    pod = _pod({"nvidia.com/gpu": "1"}, nodeSelector={names.DRA_NODE_LABEL: "true"})
    pod["metadata"]["labels"] = {"hami.io/webhook": "ignore"}
    assert not DraMode().applies(pod)
