"""Vendor sections of the device config: validated, and they enable their vendors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hami.config import ConfigError, load_config, parse_config
from hami.core.config import SchedulerConfig
from hami.vendors import registry
from hami.vendors.ascend import AscendVendor
from hami.vendors.config import IluvatarChip, VendorAwareConfig
from hami.vendors.hygon import HygonVendor

HAMI_FILE = {
    "nvidia": {"resourceCountName": "nvidia.com/gpu"},
    "cambricon": {
        "resourceCountName": "cambricon.com/vmlu",
        "resourceMemoryName": "cambricon.com/mlu.smlu.vmemory",
        "resourceCoreName": "cambricon.com/mlu.smlu.vcore",
    },
    "hygon": {"resourceCountName": "hygon.com/dcunum", "memoryFactor": 2},
    "metax": {"resourceCountName": "metax-tech.com/gpu"},
    "iluvatars": [{"chipName": "BI-V100", "commonWord": "BI-V100"}],
    "vnpus": {
        "hamiVnpuCore": True,
        "configs": [
            {
                "chipName": "910B2",
                "commonWord": "Ascend910B2",
                "resourceName": "huawei.com/Ascend910B2",
                "resourceMemoryName": "huawei.com/Ascend910B2-memory",
                "memoryAllocatable": 65536,
                "memoryCapacity": 65536,
                "aiCore": 24,
                "aiCPU": 6,
                "templates": [{"name": "vir03_1c_8g", "memory": 8192, "aiCore": 3, "aiCPU": 1}],
            }
        ],
    },
}


def test_plain_config_builds_nvidia_only() -> None:
    assert set(registry.build(SchedulerConfig())) == {"NVIDIA"}


def test_sections_enable_and_configure_vendors() -> None:
    cfg = parse_config(HAMI_FILE, "f.yaml")
    assert isinstance(cfg, VendorAwareConfig)
    vendors = registry.build(cfg)
    assert list(vendors) == [
        "NVIDIA",
        "MLU",
        "DCU",
        "Metax-GPU",
        "Metax-SGPU",
        "Ascend910B2",
        "BI-V100",
    ]
    hygon = vendors["DCU"]
    assert isinstance(hygon, HygonVendor) and hygon.config.memory_factor == 2
    ascend = vendors["Ascend910B2"]
    assert isinstance(ascend, AscendVendor)
    assert ascend.hami_vnpu_core and ascend.config.ai_cpu == 6
    assert ascend.config.resource_core_name == "huawei.com/Ascend910B2-core"
    assert cfg.vendors.sections["iluvatars"] == (IluvatarChip.named("BI-V100"),)


def test_sections_can_be_switched_off() -> None:
    data = {
        "nvidia": {"enabled": False},
        "hygon": {"enabled": False},
        "vnpus": {"enabled": False, "configs": []},
    }
    assert registry.build(parse_config(data, "f.yaml")) == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"hygon": {"memoryFactor": 0}}, "f.yaml: hygon.memoryFactor"),
        ({"cambricon": {"resourceCountNam": "x"}}, "f.yaml: cambricon.resourceCountNam"),
        ({"iluvatars": [{"commonWord": "x"}]}, "f.yaml: iluvatars.0.chipName"),
        ({"vnpus": {"configs": [{"chipName": "x"}]}}, "f.yaml: vnpus.configs.0.commonWord"),
        (
            {
                "vnpus": {
                    "configs": [{"commonWord": "A", "templates": [{"name": "t", "memory": 0}]}]
                }
            },
            "vnpus.configs.0.templates.0.memory",
        ),
        (
            {"iluvatars": [{"chipName": "A"}, {"chipName": "A"}]},
            "f.yaml: iluvatars: commonWord 'A' is listed twice",
        ),
        ({"habana": {"resourceCountName": "habana.ai/gaudi"}}, "f.yaml: habana: unknown section"),
        ({"hygon": {"enabled": "yes"}}, "f.yaml: hygon.enabled: must be true or false"),
        ({"metax": {"resourceVCountName": ""}}, "f.yaml: metax.resourceVCountName"),
        ({"enflame": {"resourceNameGCUMem": "x"}}, "f.yaml: enflame.resourceNameGCUMem"),
    ],
)
def test_bad_sections_name_file_and_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config(data, "f.yaml")


def test_example_vendor_config_loads() -> None:
    path = Path(__file__).parents[2] / "examples" / "vendors" / "config.yaml"
    vendors = registry.build(load_config(path))
    assert {"NVIDIA", "MLU", "DCU", "Ascend910B2"} <= set(vendors)


def test_the_chart_devices_are_the_registry_table() -> None:
    """Every `devices.<name>` of the chart's values is a registry row, and its managed
    resources are the resource names of that row's default config."""
    import yaml

    values = yaml.safe_load((Path(__file__).parents[2] / "charts/hami/values.yaml").read_text())
    rows = {row.chart: row for row in registry.TABLE}
    assert set(values["devices"]) == set(rows)
    for chart, section in values["devices"].items():
        row = rows[chart]
        if "customresources" not in section:
            continue
        configs = _default_configs(row)
        names = {
            value
            for config in configs
            for field, value in vars_of(config).items()
            if field.startswith("resource_")
            and field != "resource_priority_name"
            and value
            and not field.startswith("resource_name_vgcu")
        }
        assert set(section["customresources"]) == names, chart


def _default_configs(row: registry.Row) -> list[object]:
    from hami.vendors.config import DEFAULT_ILUVATAR_CHIPS, DEFAULT_VNPUS

    if row.section == "iluvatars":
        return [IluvatarChip.named(chip) for chip in DEFAULT_ILUVATAR_CHIPS]
    if row.section == "vnpus":
        return list(DEFAULT_VNPUS)
    return [row.config()]


def vars_of(config: object) -> dict[str, object]:
    import dataclasses

    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}  # type: ignore[arg-type]
