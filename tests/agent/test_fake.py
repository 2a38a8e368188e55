"""The fake discovery backend: inventories, their errors, pair scores and injected health."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hami.agent.discovery.fake import FakeSource, derived_uuid, load_inventory, parse_inventory
from hami.agent.discovery.port import open_backend
from hami.agent.errors import ConfigError
from hami.agent.values import HealthEvent
from tests.agent.builders import A100, A100_UUIDS, INVENTORIES, NODE, T4


def test_a100_inventory() -> None:
    inv = load_inventory(A100, NODE)
    assert [g.uuid for g in inv.gpus] == A100_UUIDS
    assert [g.index for g in inv.gpus] == [0, 1, 2, 3]
    assert [g.numa for g in inv.gpus] == [0, 0, 1, 1]
    assert {g.memory_mib for g in inv.gpus} == {40960}
    scores = {p.uuid: dict(p.scores) for p in inv.scores}
    assert scores[A100_UUIDS[0]] == {A100_UUIDS[1]: 1220, A100_UUIDS[2]: 1210, A100_UUIDS[3]: 1210}


def test_t4_inventory_scores_single_switch() -> None:
    inv = load_inventory(T4)
    assert [g.model for g in inv.gpus] == ["Tesla T4", "Tesla T4"]
    assert dict(inv.scores[0].scores) == {inv.gpus[1].uuid: 50}


@pytest.mark.parametrize("path", sorted(INVENTORIES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_inventory_loads(path: Path) -> None:
    assert load_inventory(path, "any-node").gpus


def test_uuids_derive_from_node_name_when_absent() -> None:
    data = {"gpus": [{"model": "A10", "memoryMiB": 23028}, {"model": "A10", "memoryMiB": 23028}]}
    a = parse_inventory(data, "inv.yaml", "node-a").gpus
    b = parse_inventory(data, "inv.yaml", "node-b").gpus
    assert a[0].uuid == derived_uuid("node-a", 0) != b[0].uuid
    assert a[0].uuid.startswith("GPU-") and a[0].uuid.count("-") == 5


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"gpus": []}, "gpus"),
        ({"gpus": [{"model": "A10"}]}, "gpus[0].memoryMiB"),
        ({"gpus": [{"model": "A10", "memoryMiB": "big"}]}, "gpus[0].memoryMiB"),
        ({"gpus": [{"model": "A10", "memoryMiB": 1, "uuid": "nope"}]}, "gpus[0].uuid"),
        ({"gpus": [{"model": "A10", "memoryMiB": 1, "colour": "red"}]}, "gpus[0].colour"),
        ({"gpus": [{"model": "A10", "memoryMiB": 1}], "links": [{"gpus": [0, 5]}]}, "links"),
        (
            {
                "gpus": [{"model": "A", "memoryMiB": 1}, {"model": "A", "memoryMiB": 1}],
                "links": [{"gpus": [0, 1], "pcie": "wormhole"}],
            },
            "links[0].pcie",
        ),
    ],
)
def test_bad_inventory_names_file_and_key(data: object, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_inventory(data, "bad.yaml")
    assert str(info.value).startswith(f"bad.yaml: {where}")


def test_duplicate_uuids_rejected() -> None:
    gpu = {"uuid": "GPU-1", "model": "A", "memoryMiB": 1}
    with pytest.raises(ConfigError, match="unique"):
        parse_inventory({"gpus": [gpu, gpu]}, "dup.yaml")


def test_yaml_syntax_error_names_file(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text("gpus: [\n")
    with pytest.raises(ConfigError, match=r"inv\.yaml: not valid YAML"):
        load_inventory(path)


def test_open_backend_checks_arguments() -> None:
    with pytest.raises(ConfigError, match="--inventory"):
        open_backend("fake")
    with pytest.raises(ConfigError, match="unknown backend"):
        open_backend("magic")
    assert open_backend("fake", A100, NODE).gpus()[0].uuid == A100_UUIDS[0]


async def test_injected_events_are_delivered_in_order() -> None:
    source = FakeSource(load_inventory(A100, NODE))
    source.inject_xid(A100_UUIDS[1], 79)
    source.recover(A100_UUIDS[1])
    events = source.health_events()
    first = await anext(events)
    second = await anext(events)
    assert first == HealthEvent(A100_UUIDS[1], False, "XID 79", xid=79)
    assert second.healthy and second.uuid == A100_UUIDS[1]


async def test_editing_health_in_the_file_becomes_events(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(A100.read_text())
    source = FakeSource(load_inventory(path, NODE), path, NODE)
    events = source.health_events()
    text = path.read_text().replace(
        '    memoryMiB: 40960\n    numa: 1\n    busId: "0000:47:00.0"\n',
        '    memoryMiB: 40960\n    numa: 1\n    busId: "0000:47:00.0"\n    healthy: false\n',
    )
    path.write_text(text)
    event = await asyncio.wait_for(anext(events), 5)
    assert event == HealthEvent(A100_UUIDS[2], False, "inventory edited")
    assert not source.gpus()[2].healthy
    path.write_text(A100.read_text())
    event = await asyncio.wait_for(anext(events), 5)
    assert event == HealthEvent(A100_UUIDS[2], True, "inventory edited")
