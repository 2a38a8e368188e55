"""Property tests: whatever the cluster and pods, no device is ever over-committed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hami.core.cluster import ClusterView, NodeState
from hami.core.decide import commit, decide
from hami.core.model import ContainerRequest, Node, PodOptions, PodRequest
from tests.core.builders import dev, vendors

POLICIES = st.sampled_from(["binpack", "spread"])
GPU_POLICIES = st.sampled_from([("binpack",), ("spread",), ("mutex",), ("binpack", "numa")])


@st.composite
def clusters(draw: st.DrawFn) -> ClusterView:
    nodes = []
    for n in range(draw(st.integers(1, 4))):
        count = draw(st.integers(1, 4))
        devices = tuple(
            dev(
                f"n{n}-g{i}",
                i,
                count=draw(st.integers(1, 4)),
                memory=draw(st.sampled_from([1000, 4000, 8000])),
                numa=draw(st.integers(0, 1)),
                health=draw(st.booleans().map(lambda b: b or True)),
            )
            for i in range(count)
        )
        nodes.append(NodeState.of(Node(name=f"n{n}", devices=devices)))
    return ClusterView.of(nodes)


@st.composite
def pods(draw: st.DrawFn, name: str) -> PodRequest:
    containers: list[tuple[ContainerRequest, ...]] = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            containers.append(())
            continue
        request = ContainerRequest(
            vendor="NVIDIA",
            nums=draw(st.integers(1, 3)),
            memreq=draw(st.sampled_from([0, 500, 1000, 3000])),
            mem_pct=draw(st.sampled_from([101, 20, 50])),
            coresreq=draw(st.sampled_from([0, 10, 30, 100])),
        )
        containers.append((request,))
    options = PodOptions(node_policy=draw(POLICIES), gpu_policy=draw(GPU_POLICIES))
    return PodRequest(
        namespace="ns",
        name=name,
        containers=tuple(containers),
        init_count=draw(st.integers(0, len(containers) - 1)),
        options=options,
    )


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_no_device_is_ever_overcommitted(data: st.DataObject) -> None:
    view = data.draw(clusters())
    for i in range(data.draw(st.integers(1, 8))):
        pod = data.draw(pods(f"p{i}"))
        decision = decide(pod, view, vendors())
        view = commit(view, decision)
        if decision.fit is not None:
            _check_pod_shape(pod, decision.fit.devices("NVIDIA"))
    for state in view.states():
        for device, usage in zip(state.node.devices, state.usage, strict=True):
            assert usage.used <= device.count
            assert usage.usedmem <= device.memory
            assert usage.usedcores <= device.cores


def _check_pod_shape(pod: PodRequest, devices: tuple[tuple[object, ...], ...]) -> None:
    assert len(devices) == len(pod.containers)
    for requests, entry in zip(pod.containers, devices, strict=True):
        wanted = sum(r.nums for r in requests)
        assert len(entry) == wanted
        assert len({d.uuid for d in entry}) == len(entry)  # type: ignore[attr-defined]


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_ranked_walk_matches_an_exhaustive_search(data: st.DataObject) -> None:
    """The index only saves work: the chosen node is the best-ranked node that fits."""
    from hami.core.fit import NodeFit, fit_pod

    view = data.draw(clusters())
    for i in range(data.draw(st.integers(1, 6))):
        pod = data.draw(pods(f"p{i}"))
        decision = decide(pod, view, vendors())
        fitting = [
            (s.score, s.node.name)
            for s in view.states()
            if isinstance(fit_pod(s.node, s.usage, pod, vendors()), NodeFit)
        ]
        if not pod.wants_devices:
            assert decision.node is None
        elif not fitting:
            assert decision.node is None
            assert set(decision.failed) == {s.node.name for s in view.states()}
        else:
            best = max(fitting) if pod.options.node_policy == "binpack" else min(fitting)
            assert decision.node == best[1]
        view = commit(view, decision)
