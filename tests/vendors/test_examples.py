"""The mixed-vendor example: every vendor's pod is placed by the real simulation core."""

from __future__ import annotations

from pathlib import Path

import yaml

from hami.config import load_config
from hami.core.nodes import node_from_manifest
from hami.sim.load import Cluster, load_cluster, load_pods
from hami.sim.run import simulate
from hami.vendors import registry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "vendors"


def _cluster() -> tuple[Cluster, dict[str, object]]:
    vendors = registry.build(load_config(EXAMPLES / "config.yaml"))
    loaded = load_cluster(EXAMPLES / "cluster.yaml", vendors)
    # `hami sim` reads annotations only; capacity-registered vendors (Cambricon) need the manifest
    docs = [d for d in yaml.safe_load_all((EXAMPLES / "cluster.yaml").read_text()) if d]
    nodes = tuple(node_from_manifest(d, vendors) for d in docs if d["kind"] == "Node")
    return Cluster(nodes=nodes, placed=loaded.placed), dict(vendors)


def test_every_vendor_pod_is_placed_on_its_node() -> None:
    config = load_config(EXAMPLES / "config.yaml")
    cluster, vendors = _cluster()
    pods = load_pods(EXAMPLES / "pods.yaml", vendors, config)  # type: ignore[arg-type]
    outcome = simulate(cluster, pods, vendors)  # type: ignore[arg-type]
    placed = {d.pod: d.node for d in outcome.decisions}
    assert placed == {
        "demo/cuda": "nvidia-t4",
        "demo/npu": "ascend-910b2",
        "demo/mlu": "cambricon-mlu",
        "demo/dcu": "hygon-dcu",
        "demo/corex": "iluvatar-bi",
        "demo/musa": "mthreads-s4000",
        "demo/maca": "metax-c500",
        "demo/xpu": "kunlun-p800",
        "demo/gcu": "enflame-s60",
        "demo/rocm": "amd-mi300x",
        "demo/supa": "biren-106",
        "demo/vaststream": "vastai-va1",
        "demo/neuron": "aws-inf2",
        "demo/gcu-drs": "enflame-drs",
    }
    notes = {d.pod: d.annotations for d in outcome.decisions}
    assert notes["demo/npu"]["huawei.com/Ascend910B2"] == (
        '[{"UUID":"npu-1","temp":"vir06_1c_16g","memory":16384}]'
    )
    assert notes["demo/mlu"]["CAMBRICON_DSMLU_PROFILE"] == "1_50_8"
    assert notes["demo/dcu"]["hami.io/dcu-devices-allocated"] == "DCU-1,DCU,4000,30:;"
    assert notes["demo/corex"]["hami.io/BI-V100-devices-to-allocate"] == "IL-0,BI-V100,4096,0:;"
    assert notes["demo/maca"]["metax-tech.com/gpu-devices-allocated"] == (
        '[[{"uuid":"GPU-mx-0","compute":30,"vRam":4096}]]'
    )
    assert notes["demo/xpu"]["BAIDU_COM_DEVICE_IDX"] == "0,1"
    assert notes["demo/rocm"]["hami.io/amd-devices-allocated"] == (
        "amd-0,AMD-Instinct-MI300X,16384,76:;"
    )
    assert notes["demo/neuron"]["hami.io/aws-neuron-devices-allocated"] == (
        "aws-inf2-AWSNeuron-0,AWSNeuron,0,1:;"
    )
    assert notes["demo/neuron"]["AWS_NEURON_IDS"] == "0"
    assert notes["demo/gcu-drs"]["hami.io/enflame-vgpu-devices-allocated"] == (
        "enflame-drs-enflame-drs-1,Enflame,16384,25:;enflame-drs-enflame-drs-0,Enflame,32768,50:;"
    )
    assert notes["demo/gcu-drs"]["enflame.com/gcu-request-size"] == "2"
    drs = outcome.view.get("enflame-drs")
    assert drs is not None and sum(u.used for u in drs.usage) == 6  # 2 + 4 slices


def test_sim_reads_annotation_registered_vendors_as_is() -> None:
    vendors = registry.build(load_config(EXAMPLES / "config.yaml"))
    loaded = load_cluster(EXAMPLES / "cluster.yaml", vendors)
    counts = {n.name: len(n.devices) for n in loaded.nodes}
    assert counts["ascend-910b2"] == 2 and counts["hygon-dcu"] == 2 and counts["iluvatar-bi"] == 1
