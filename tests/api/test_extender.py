"""Extender wire types (capitalised keys from kube-scheduler, any case accepted, Go-shaped
replies) and AdmissionReview v1/v1beta1 with JSON Patch."""

from __future__ import annotations

import pytest

from hami.api.admission import (
    ADMISSION_V1BETA1,
    AdmissionRequest,
    AdmissionResponse,
    PatchOp,
    decode_patch,
    encode_patch,
    pointer,
)
from hami.api.errors import WireFormatError
from hami.api.extender import (
    ExtenderArgs,
    ExtenderBindingArgs,
    ExtenderBindingResult,
    ExtenderFilterResult,
    filter_args_json,
)

POD = {"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": []}}


def test_filter_args_as_kube_scheduler_sends_them() -> None:
    args = ExtenderArgs.from_json({"Pod": POD, "Nodes": None, "NodeNames": ["a", "b"]})
    assert args.pod == POD
    assert args.node_names == ("a", "b")
    assert args.nodes is None


def test_filter_args_any_case_and_full_nodes() -> None:
    node = {"metadata": {"name": "n1"}}
    args = ExtenderArgs.from_json({"pod": POD, "nodes": {"items": [node]}})
    assert args.nodes == (node,)
    assert args.node_names is None
    assert ExtenderArgs.from_json(filter_args_json(POD, ["x"])).node_names == ("x",)


@pytest.mark.parametrize(
    "body",
    [[], {"Pod": "nope"}, {"Pod": POD, "NodeNames": "a"}, {"Pod": POD, "Nodes": {"items": 3}}],
)
def test_filter_args_rejects_bad_shapes(body: object) -> None:
    with pytest.raises(WireFormatError):
        ExtenderArgs.from_json(body)


def test_filter_result_json_round_trip() -> None:
    result = ExtenderFilterResult(
        node_names=("n1",), failed_nodes={"n2": "1/1 CardInsufficientMemory"}
    )
    body = result.to_json()
    assert body == {
        "Nodes": None,
        "NodeNames": ["n1"],
        "FailedNodes": {"n2": "1/1 CardInsufficientMemory"},
        "FailedAndUnresolvableNodes": None,
        "Error": "",
    }
    assert ExtenderFilterResult.from_json(body) == result
    with_nodes = ExtenderFilterResult(nodes=({"metadata": {"name": "n"}},))
    assert with_nodes.to_json()["Nodes"] == {"metadata": {}, "items": [{"metadata": {"name": "n"}}]}
    assert ExtenderFilterResult.from_json(with_nodes.to_json()).nodes == with_nodes.nodes


def test_binding_args_and_result() -> None:
    body = {"PodName": "p", "PodNamespace": "ns", "PodUID": "u", "Node": "n"}
    args = ExtenderBindingArgs.from_json(body)
    assert args == ExtenderBindingArgs("p", "ns", "u", "n")
    assert args.to_json() == body
    assert ExtenderBindingResult(error="x").to_json() == {"Error": "x"}
    assert ExtenderBindingResult.from_json({"error": "y"}).error == "y"
    with pytest.raises(WireFormatError):
        ExtenderBindingArgs.from_json({"PodName": "p"})
    with pytest.raises(WireFormatError):
        ExtenderBindingArgs.from_json({"PodName": 3, "Node": "n"})


def test_filter_result_rejects_bad_reasons() -> None:
    with pytest.raises(WireFormatError):
        ExtenderFilterResult.from_json({"FailedNodes": ["a"]})


# --- AdmissionReview ---------------------------------------------------------------------------


def review(version: str = "admission.k8s.io/v1") -> dict[str, object]:
    return {
        "apiVersion": version,
        "kind": "AdmissionReview",
        "request": {
            "uid": "abc",
            "namespace": "ns",
            "operation": "CREATE",
            "object": {"metadata": {"name": "p"}},
            "dryRun": True,
        },
    }


def test_request_fields() -> None:
    request = AdmissionRequest.from_json(review(ADMISSION_V1BETA1))
    assert (request.api_version, request.uid, request.namespace) == (ADMISSION_V1BETA1, "abc", "ns")
    assert request.obj == {"metadata": {"name": "p"}}
    assert request.dry_run


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"apiVersion": "admission.k8s.io/v2", "request": {}},
        {"apiVersion": "admission.k8s.io/v1"},
        {"request": {"object": {}}},
        {"request": {"uid": "u"}},
    ],
)
def test_request_rejects_bad_reviews(body: object) -> None:
    with pytest.raises(WireFormatError):
        AdmissionRequest.from_json(body)


def test_allowed_response_carries_base64_patch_in_request_version() -> None:
    ops = (PatchOp("add", pointer("spec", "schedulerName"), "hami-scheduler"),)
    body = AdmissionResponse("abc", True, ops).review(ADMISSION_V1BETA1)
    assert body["apiVersion"] == ADMISSION_V1BETA1
    response = body["response"]
    assert isinstance(response, dict)
    assert response["patchType"] == "JSONPatch"
    assert decode_patch(str(response["patch"])) == [
        {"op": "add", "path": "/spec/schedulerName", "value": "hami-scheduler"}
    ]


def test_denied_response_has_status_and_no_patch() -> None:
    body = AdmissionResponse("abc", False, code=403, message="no").review()
    assert body["response"] == {
        "uid": "abc",
        "allowed": False,
        "status": {"code": 403, "message": "no", "reason": "Forbidden"},
    }


def test_pointer_escapes_and_remove_op() -> None:
    assert pointer("metadata", "labels", "hami.io/webhook") == "/metadata/labels/hami.io~1webhook"
    assert pointer("a~b", 0) == "/a~0b/0"
    assert decode_patch(encode_patch([PatchOp("remove", "/x")])) == [{"op": "remove", "path": "/x"}]
    with pytest.raises(WireFormatError):
        decode_patch("bm90IGpzb24=")
    with pytest.raises(WireFormatError):
        decode_patch("e30=")
