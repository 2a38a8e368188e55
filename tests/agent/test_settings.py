"""Configuration: shared yaml < per-node JSON < CLI flags, and clear errors naming file and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hami.agent.config.loading import load_node_file, load_shared, node_config
from hami.agent.config.settings import NodeConfig, Settings, validate
from hami.agent.errors import ConfigError

CHART_EXAMPLE = {
    "nodeconfig": [
        {
            "name": "gpu-node-1",
            "operatingmode": "hami-core",
            "devicememoryscaling": 1.5,
            "devicesplitcount": 4,
            "preconfigureddevicememory": 0,
            "enablenumatopology": True,
            "migstrategy": "none",
            "filterdevices": {"uuid": ["GPU-x"], "index": [3]},
            "enablegetpreferredallocation": True,
        },
        {"name": "other-node", "devicesplitcount": 7},
    ]
}


def write(path: Path, data: object) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_defaults_follow_hami() -> None:
    config = load_shared(None)
    assert config == NodeConfig()
    assert config.split_count == 10 and config.lib_cuda_log_level == "1"


def test_shared_yaml_then_node_json_then_flags(tmp_path: Path) -> None:
    shared = tmp_path / "device-config.yaml"
    shared.write_text(
        "nvidia:\n  deviceSplitCount: 5\n  deviceCoreScaling: 2\n  libCudaLogLevel: 3\n"
        "  disableCoreLimit: true\n"
    )
    node_file = load_node_file(write(tmp_path / "config.json", CHART_EXAMPLE))
    config = node_config(load_shared(shared), node_file, "gpu-node-1", {"split_count": 9})
    assert config.split_count == 9  # flag wins
    assert config.memory_scaling == 1.5  # per-node JSON
    assert config.core_scaling == 2.0  # yaml, not overridden
    assert config.lib_cuda_log_level == "3"
    assert config.disable_core_limit is True
    assert config.enable_numa_topology is True and config.preferred_allocation is True
    assert config.filter_uuids == {"GPU-x"} and config.filter_indexes == {3}
    assert not config.manages("GPU-x", 0) and not config.manages("GPU-y", 3)


def test_entries_for_other_nodes_do_not_apply(tmp_path: Path) -> None:
    node_file = load_node_file(write(tmp_path / "config.json", CHART_EXAMPLE))
    assert node_config(NodeConfig(), node_file, "nobody", {}) == NodeConfig()


def test_node_json_keys_match_case_insensitively_like_go(tmp_path: Path) -> None:
    data = {"nodeConfig": [{"Name": "n", "DeviceSplitCount": 3}]}
    node_file = load_node_file(write(tmp_path / "config.json", data))
    assert node_config(NodeConfig(), node_file, "n", {}).split_count == 3


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (
            {"nodeconfig": [{"name": "n", "devicesplitcount": "many"}]},
            "nodeconfig[0].devicesplitcount",
        ),
        ({"nodeconfig": [{"name": "n", "devicesplitcount": 0}]}, "nodeconfig[0].devicesplitcount"),
        ({"nodeconfig": [{"name": "n", "devicesplitcont": 3}]}, "nodeconfig[0].devicesplitcont"),
        ({"nodeconfig": [{"name": "n", "operatingmode": "turbo"}]}, "nodeconfig[0].operatingmode"),
        ({"nodeconfig": [{"name": "n", "libcudaloglevel": 9}]}, "nodeconfig[0].libcudaloglevel"),
        (
            {"nodeconfig": [{"name": "n", "filterdevices": {"index": ["x"]}}]},
            "nodeconfig[0].filterdevices.index[0]",
        ),
        ({"nodeconfig": [{}, {"name": "n"}]}, "nodeconfig[0].name"),
    ],
)
def test_bad_node_json_names_file_and_key(tmp_path: Path, data: object, where: str) -> None:
    path = write(tmp_path / "config.json", data)
    with pytest.raises(ConfigError) as info:
        load_node_file(path)
    assert str(info.value).startswith(f"{path}: {where}:")


def test_node_json_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "config.json", '{"nodeconfig": [\n  {"name": }\n]}')
    with pytest.raises(ConfigError, match=r"config\.json: not valid JSON: .*line 2"):
        load_node_file(path)


def test_missing_node_json_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.json: cannot read"):
        load_node_file(tmp_path / "missing.json")


def test_bad_shared_yaml_names_file_and_key(tmp_path: Path) -> None:
    shared = tmp_path / "device-config.yaml"
    shared.write_text("nvidia:\n  deviceSplitCount: lots\n")
    with pytest.raises(ConfigError, match=r"device-config\.yaml: nvidia\.deviceSplitCount"):
        load_shared(shared)


def test_unknown_flag_setting_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown node setting"):
        node_config(NodeConfig(), None, "n", {"split_cnt": 3})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (Settings("n", list_strategies=("envvar", "magic")), "--device-list-strategy"),
        (Settings("n", NodeConfig(resource_name="gpu")), "resource name"),
        (Settings("n", NodeConfig(operating_mode="turbo")), "operatingmode"),
        (Settings("n", NodeConfig(split_count=0)), "deviceSplitCount"),
    ],
)
def test_validate_rejects_inconsistent_settings(settings: Settings, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(settings)


def test_socket_name_follows_resource_name() -> None:
    assert Settings("n").socket_name == "nvidia-gpu.sock"
    assert (
        Settings("n", NodeConfig(resource_name="example.com/vgpu")).socket_name
        == "nvidia-vgpu.sock"
    )
