"""MIG capability in the registration: discovery's profiles, the allow-list, HAMi's wire
format (decoded by the scheduler's codec), and the start-up error for unknown profiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hami.agent import devices as d
from hami.agent.config.loading import load_node_file, load_shared, node_config
from hami.agent.config.settings import NodeConfig
from hami.agent.discovery.fake import load_inventory
from hami.agent.errors import ConfigError
from hami.api.annotations import decode_node_devices, encode_node_devices
from hami.api.types import MigPlacement
from tests.agent.builders import INVENTORIES

pytestmark = pytest.mark.mig

A100_MIG = INVENTORIES / "a100-mig.yaml"
H100_MIG = INVENTORIES / "h100-mig.yaml"


def registered(path: Path, config: NodeConfig) -> list[dict[str, Any]]:
    gpus = d.managed(d.apply_allowlist(load_inventory(path, "n").gpus, config), config)
    encoded = encode_node_devices(d.registration(gpus, {}, config))
    decoded = decode_node_devices(encoded)  # what the scheduler reads
    assert encode_node_devices(decoded) == encoded
    devices: list[dict[str, Any]] = json.loads(encoded)
    return devices


def test_mig_node_registers_every_profile_with_placements() -> None:
    (first, _second) = registered(A100_MIG, NodeConfig(operating_mode="mig"))
    assert (first["mode"], first["count"], first["devmem"], first["devcore"]) == (
        "mig",
        7,
        81920,
        100,
    )
    profiles = {p["name"]: p for p in first["migProfiles"]}
    assert list(profiles) == ["1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"]
    assert profiles["3g.40gb"] == {
        "name": "3g.40gb",
        "memoryMB": 40192,
        "core": 43,
        "sliceCount": 3,
        "placements": [{"start": 0, "size": 4}, {"start": 4, "size": 4}],
    }
    assert list(first) == [
        "id",
        "count",
        "devmem",
        "devcore",
        "type",
        "mode",
        "migProfiles",
        "health",
    ]


def test_allowlist_keeps_listed_profiles_of_matching_models() -> None:
    config = NodeConfig(
        operating_mode="mig",
        mig_allowlist=((("A30",), ("1g.6gb",)), (("H100 80GB",), ("1g.10gb", "3g.40gb"))),
    )
    (h100,) = registered(H100_MIG, config)
    assert [p["name"] for p in h100["migProfiles"]] == ["1g.10gb", "3g.40gb"]
    assert h100["count"] == 7
    # an A100 no rule names keeps no profile, so it is not registered (as HAMi)
    assert registered(A100_MIG, config) == []


def test_allowlist_profile_unknown_everywhere_is_a_start_up_error() -> None:
    config = NodeConfig(operating_mode="mig", mig_allowlist=((("H100",), ("1g.10gb", "5g.99gb")),))
    with pytest.raises(
        ConfigError, match=r"migProfileAllowlist\[0\]: unknown MIG profile '5g.99gb'"
    ):
        d.apply_allowlist(load_inventory(H100_MIG, "n").gpus, config)


def test_allowlist_from_the_shared_file_and_the_node_json(tmp_path: Path) -> None:
    shared = tmp_path / "device-config.yaml"
    shared.write_text(
        "nvidia:\n  migProfileAllowlist:\n"
        "    - models: [A100-SXM4-80GB]\n      profiles: [1g.10gb, 7g.80gb]\n"
    )
    base = load_shared(shared)
    assert base.mig_allowlist == ((("A100-SXM4-80GB",), ("1g.10gb", "7g.80gb")),)
    per_node = tmp_path / "config.json"
    per_node.write_text(
        json.dumps(
            {
                "nodeconfig": [
                    {
                        "name": "n",
                        "operatingmode": "mig",
                        "migProfileAllowlist": ["2g.20gb"],
                        "migDisableIdle": True,
                    }
                ]
            }
        )
    )
    config = node_config(base, load_node_file(per_node), "n", {})
    assert config.mig_allowlist == ((("",), ("2g.20gb",)),) and config.mig_disable_idle
    (first, _) = registered(A100_MIG, config)
    assert [p["name"] for p in first["migProfiles"]] == ["2g.20gb"]
    assert first["count"] == 3


def test_placements_decode_like_the_scheduler() -> None:
    (h100,) = registered(H100_MIG, NodeConfig(operating_mode="mig"))
    (info,) = decode_node_devices(json.dumps([h100]))
    one = next(p for p in info.mig_profiles if p.name == "1g.10gb")
    assert one.placements == tuple(MigPlacement(i, 1) for i in range(7))
