"""The fake MIG model: profiles per model, placements, overlap and compute rules, IDs, mode
toggling and NVML's errors; persistence across processes (a restarted plugin)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hami.agent.discovery.fake import parse_inventory
from hami.agent.errors import ConfigError
from hami.agent.mig.catalog import (
    NVML_ERROR_IN_USE,
    NVML_ERROR_INSUFFICIENT_RESOURCES,
    NVML_ERROR_INVALID_ARGUMENT,
    NVML_ERROR_NOT_FOUND,
    NVML_ERROR_NOT_SUPPORTED,
    MigError,
    specs_for,
    to_profiles,
)
from hami.agent.mig.fake import FakeMig, FakeMigGpu
from hami.api.types import MigPlacement

pytestmark = pytest.mark.mig

A100 = "GPU-a100"
H100 = "GPU-h100"
T4 = "GPU-t4"


def fake(enabled: bool = True, path: Path | None = None) -> FakeMig:
    return FakeMig(
        [
            FakeMigGpu(A100, specs_for("NVIDIA A100-SXM4-40GB"), enabled=enabled),
            FakeMigGpu(H100, specs_for("NVIDIA H100 80GB HBM3"), enabled=enabled),
            FakeMigGpu(T4, specs_for("Tesla T4")),
        ],
        path,
    )


def code(exc: pytest.ExceptionInfo[MigError]) -> int:
    return exc.value.code


def test_profiles_per_model() -> None:
    a100 = {p.name: p for p in to_profiles(specs_for("NVIDIA A100-SXM4-40GB"))}
    assert list(a100) == ["1g.5gb", "1g.10gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"]
    assert (a100["2g.10gb"].memory_mb, a100["2g.10gb"].core, a100["2g.10gb"].slice_count) == (
        9984,
        29,
        2,
    )  # HAMi's example (wire-format.md §5.7)
    assert a100["2g.10gb"].placements == (
        MigPlacement(0, 2),
        MigPlacement(2, 2),
        MigPlacement(4, 2),
    )
    assert a100["1g.5gb"].placements == tuple(MigPlacement(i, 1) for i in range(7))
    assert a100["3g.20gb"].placements == (MigPlacement(0, 4), MigPlacement(4, 4))
    assert a100["7g.40gb"].placements == (MigPlacement(0, 8),)
    a80 = [p.name for p in to_profiles(specs_for("NVIDIA A100-SXM4-80GB"))]
    h100 = [p.name for p in to_profiles(specs_for("NVIDIA H100 80GB HBM3"))]
    assert a80 == h100 == ["1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"]
    assert specs_for("Tesla T4") == () and specs_for("Tesla V100-SXM2-32GB") == ()


def test_seven_1g_fill_the_gpu_then_insufficient_resources() -> None:
    mig = fake()
    ids = [mig.create_gpu_instance(A100, "1g.5gb", MigPlacement(s, 1)) for s in range(7)]
    assert len(set(ids)) == 7 and 0 not in ids
    with pytest.raises(MigError) as exc:
        mig.create_gpu_instance(A100, "1g.5gb", MigPlacement(6, 1))
    assert code(exc) == NVML_ERROR_INSUFFICIENT_RESOURCES and "overlaps" in str(exc.value)


def test_overlap_and_legal_placements() -> None:
    mig = fake()
    mig.create_gpu_instance(H100, "3g.40gb", MigPlacement(4, 4))
    with pytest.raises(MigError) as exc:
        mig.create_gpu_instance(H100, "2g.20gb", MigPlacement(4, 2))
    assert code(exc) == NVML_ERROR_INSUFFICIENT_RESOURCES
    with pytest.raises(MigError) as exc:
        mig.create_gpu_instance(H100, "3g.40gb", MigPlacement(2, 4))
    assert code(exc) == NVML_ERROR_INVALID_ARGUMENT  # not a possible placement of 3g
    with pytest.raises(MigError) as exc:
        mig.create_gpu_instance(H100, "1g.5gb", MigPlacement(0, 1))
    assert code(exc) == NVML_ERROR_NOT_SUPPORTED  # an A100-40GB profile
    # the other half: 4g + 3g = 7 compute slices, the whole GPU
    mig.create_gpu_instance(H100, "4g.40gb", MigPlacement(0, 4))
    assert [i.profile for i in mig.instances(H100)] == ["3g.40gb", "4g.40gb"]


def test_compute_slices_are_a_limit_too() -> None:
    mig = FakeMig([FakeMigGpu(A100, specs_for("A100-SXM4-40GB"), enabled=True)])
    for start in (0, 2, 4):
        mig.create_gpu_instance(A100, "2g.10gb", MigPlacement(start, 2))
    mig.create_gpu_instance(A100, "1g.10gb", MigPlacement(6, 2))  # 2+2+2+1 = 7
    assert len(mig.instances(A100)) == 4


def test_full_gpu_instance_is_gi_0_and_ci_ids() -> None:
    mig = fake()
    gi = mig.create_gpu_instance(A100, "7g.40gb", MigPlacement(0, 8))
    assert gi == 0
    inst = mig.create_compute_instance(A100, gi)
    assert (inst.compute_instance_id, inst.profile) == (0, "7g.40gb")
    assert inst.mig_uuid is not None and inst.mig_uuid.startswith("MIG-")
    with pytest.raises(MigError) as exc:
        mig.create_compute_instance(A100, gi)
    assert code(exc) == NVML_ERROR_INSUFFICIENT_RESOURCES
    with pytest.raises(MigError) as exc:
        mig.create_compute_instance(A100, 5)
    assert code(exc) == NVML_ERROR_NOT_FOUND


def test_destroy_order_and_in_use() -> None:
    mig = fake()
    gi = mig.create_gpu_instance(A100, "3g.20gb", MigPlacement(4, 4))
    inst = mig.create_compute_instance(A100, gi)
    with pytest.raises(MigError) as exc:
        mig.destroy_gpu_instance(A100, gi)
    assert code(exc) == NVML_ERROR_IN_USE  # CI first
    mig.set_busy(A100, gi)
    with pytest.raises(MigError) as exc:
        mig.destroy_compute_instance(A100, gi, 0)
    assert code(exc) == NVML_ERROR_IN_USE  # processes run on it
    mig.set_busy(A100, gi, False)
    mig.destroy_compute_instance(A100, gi, inst.compute_instance_id or 0)
    mig.destroy_gpu_instance(A100, gi)
    assert mig.instances(A100) == []
    again = mig.create_compute_instance(
        A100, mig.create_gpu_instance(A100, "3g.20gb", MigPlacement(4, 4))
    )
    assert again.mig_uuid != inst.mig_uuid  # a new device, a new UUID


def test_mig_mode_toggle() -> None:
    mig = fake(enabled=False)
    with pytest.raises(MigError) as exc:
        mig.create_gpu_instance(A100, "1g.5gb", MigPlacement(0, 1))
    assert code(exc) == NVML_ERROR_NOT_SUPPORTED and "disabled" in str(exc.value)
    mig.set_enabled(A100, True)
    gi = mig.create_gpu_instance(A100, "1g.5gb", MigPlacement(0, 1))
    with pytest.raises(MigError) as exc:
        mig.set_enabled(A100, False)
    assert code(exc) == NVML_ERROR_IN_USE
    mig.destroy_gpu_instance(A100, gi)
    mig.set_busy(A100, None)
    with pytest.raises(MigError) as exc:
        mig.set_enabled(A100, False)
    assert code(exc) == NVML_ERROR_IN_USE
    mig.set_busy(A100, None, False)
    mig.set_enabled(A100, False)
    assert not mig.enabled(A100)


def test_gpu_without_mig_is_not_supported() -> None:
    mig = fake()
    assert not mig.capable(T4) and mig.profiles(T4) == () and mig.instances(T4) == []
    for call in (lambda: mig.set_enabled(T4, True), lambda: mig.enabled(T4)):
        with pytest.raises(MigError) as exc:
            call()
        assert code(exc) == NVML_ERROR_NOT_SUPPORTED


def test_injected_faults_once_and_always() -> None:
    mig = fake()
    mig.inject(A100, "createComputeInstance", NVML_ERROR_INSUFFICIENT_RESOURCES)
    gi = mig.create_gpu_instance(A100, "1g.5gb", MigPlacement(0, 1))
    with pytest.raises(MigError):
        mig.create_compute_instance(A100, gi)
    assert mig.create_compute_instance(A100, gi).mig_uuid  # only once
    always = FakeMig([FakeMigGpu(A100, specs_for("A100"), True, faults={"createGpuInstance": 19})])
    for _ in range(2):
        with pytest.raises(MigError) as exc:
            always.create_gpu_instance(A100, "1g.5gb", MigPlacement(0, 1))
        assert code(exc) == NVML_ERROR_IN_USE


def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "node.fake-mig.json"
    first = fake(path=path)
    inst = first.create_compute_instance(
        A100, first.create_gpu_instance(A100, "2g.10gb", MigPlacement(2, 2))
    )
    second = fake(path=path)  # a restarted plugin: the GPU kept its instances
    assert second.instances(A100) == [inst]


def test_inventory_mig_section() -> None:
    data = {
        "gpus": [
            {
                "model": "NVIDIA A100-SXM4-40GB",
                "memoryMiB": 40960,
                "mig": {
                    "enabled": True,
                    "instances": [{"profile": "1g.5gb", "start": 6}],
                    "faults": {"createComputeInstance": "insufficient-resources"},
                },
            }
        ]
    }
    inv = parse_inventory(data, "inv.yaml", "n1")
    assert [p.name for p in inv.gpus[0].mig_profiles][:2] == ["1g.5gb", "1g.10gb"]
    (gpu,) = inv.mig
    assert gpu.enabled and gpu.instances == (("1g.5gb", 6),)
    assert gpu.faults == {"createComputeInstance": NVML_ERROR_INSUFFICIENT_RESOURCES}
    bad = {
        "gpus": [
            {
                **data["gpus"][0],
                "mig": {"enabled": True, "instances": [{"profile": "3g.20gb", "start": 2}]},
            }
        ]
    }
    with pytest.raises(
        ConfigError, match=r"inv.yaml: gpus\[0\].mig.instances: 3g.20gb cannot start at 2"
    ):
        parse_inventory(bad, "inv.yaml")
    t4 = {"gpus": [{"model": "Tesla T4", "memoryMiB": 15360, "mig": {"enabled": True}}]}
    with pytest.raises(ConfigError, match="Tesla T4 has no MIG profiles"):
        parse_inventory(t4, "inv.yaml")


def test_a_node_without_mig_gpus_writes_no_state(tmp_path: Path) -> None:
    """A hami-core node's discovery leaves no mig/ directory behind (helm uninstall keeps only
    the documented host files)."""
    from hami.agent.discovery.fake import FakeSource, load_inventory

    inventory = Path(__file__).resolve().parents[2] / "examples" / "inventory" / "t4-pair.yaml"
    source = FakeSource(load_inventory(inventory, "n"), mig_state=tmp_path / "mig" / "n.json")
    source.gpus()
    assert not (tmp_path / "mig").exists()
