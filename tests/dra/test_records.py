from __future__ import annotations

from typing import Any

from hami.core.dra import names, records


def _claim(name: str, node: str, device: str, memory: str, cores: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "ownerReferences": [{"kind": "Pod", "name": f"pod-{name}"}],
        },
        "status": {
            "allocation": {
                "devices": {
                    "results": [
                        {
                            "driver": names.DRIVER,
                            "pool": node,
                            "device": device,
                            "request": "gpu",
                            "consumedCapacity": {"memory": memory, "cores": cores},
                            "shareID": "s1",
                        },
                        {"driver": "other.example.com", "pool": node, "device": "x"},
                    ]
                }
            }
        },
    }


def test_allocations_read_consumed_capacity() -> None:
    (a,) = records.allocations([_claim("c", "n1", "hami-gpu-0", "3Gi", "30")])
    assert (a.owner, a.node, a.device, a.memory_mib, a.cores, a.share_id) == (
        "pod-c",
        "n1",
        "hami-gpu-0",
        3072,
        30,
        "s1",
    )


def test_audit_finds_overconsumed_and_unpublished_devices() -> None:
    slices = [
        {
            "spec": {
                "driver": names.DRIVER,
                "pool": {"name": "n1"},
                "devices": [
                    {
                        "name": "hami-gpu-0",
                        "capacity": {"memory": {"value": "4Gi"}, "cores": {"value": "100"}},
                    }
                ],
            }
        }
    ]
    capacity = records.capacities(slices)
    ok = records.allocations([_claim("a", "n1", "hami-gpu-0", "2Gi", "50")] * 2)
    assert records.overcommitted(records.usage(ok), capacity) == []
    bad = records.allocations(
        [_claim("a", "n1", "hami-gpu-0", "3Gi", "60")] * 2
        + [_claim("b", "n2", "hami-gpu-0", "1Gi", "1")]
    )
    assert records.overcommitted(records.usage(bad), capacity) == [
        "n1/hami-gpu-0: memory 6442450944 > 4294967296 bytes",
        "n1/hami-gpu-0: cores 120 > 100",
        "n2/hami-gpu-0: allocated to 1 claim(s) but not published",
    ]


def test_pending_reason_is_the_scheduler_condition() -> None:
    pod = {
        "status": {
            "conditions": [
                {"type": "PodScheduled", "status": "False", "message": "cannot allocate all claims"}
            ]
        }
    }
    assert records.pending_reason(pod) == "cannot allocate all claims"
    assert records.pending_reason({}) == ""


def test_why_unallocatable_names_the_capacity_that_is_missing() -> None:
    capacity = {("n1", "g0"): records.Usage(4 * names.MIB * 1024, 100)}
    used = {("n1", "g0"): records.Usage(3 * names.MIB * 1024, 50, 1)}

    def claim(memory: str, cores: str = "10", count: int = 1) -> dict[str, Any]:
        request = {"count": count, "capacity": {"requests": {"memory": memory, "cores": cores}}}
        return {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": request}]}}}

    assert records.why_unallocatable(claim("1Gi"), capacity, used) == []
    assert records.why_unallocatable(claim("8Gi"), capacity, used) == [
        "request gpu: 8192 MiB is more than any device has (4096 MiB)"
    ]
    assert records.why_unallocatable(claim("2Gi"), capacity, used) == [
        "request gpu: no node has a device with 2048 MiB and 10 cores free "
        "(the most free on any device: 1024 MiB, 50 cores)"
    ]
    assert records.why_unallocatable(claim("1Gi", "60"), capacity, used)
    assert records.why_unallocatable(claim("1Gi", count=2), capacity, used)
