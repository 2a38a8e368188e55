"""The one way an e2e module brings up HAMi on a local control plane (issue 20).

:func:`stack_fixture` makes a module's ``stack`` fixture: a :class:`~hami.demo.stack.Stack`
started in a temporary folder, brought up by the module's own ``up`` (usually :func:`serve`),
stopped at the end of the module whatever happened. :func:`api` is the per-test client of that
stack (a module that names a ``stack`` fixture gets it through ``tests/e2e/conftest.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from hami.demo.stack import Stack, create_node, register_webhook, wait_registered
from hami.k8s.client import LightkubeAPI

T = TypeVar("T")

KWOK_GENERIC = Path(__file__).resolve().parents[2] / "examples" / "inventory" / "kwok-generic.yaml"

Up = Callable[[Stack], None]
Action = Callable[[LightkubeAPI], Awaitable[T]]


def stack_fixture(
    name: str,
    up: Up,
    *,
    chart_values: Sequence[str] = (),
    down: Up | None = None,
) -> Any:
    """A module-scoped ``stack`` fixture: the control plane ``name`` (chart values
    ``chart_values``), then ``up(stack)``; at the end ``down(stack)`` (if any) and every
    process stopped."""

    @pytest.fixture(scope="module")
    def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
        result = Stack.start(tmp_path_factory.mktemp(name), name, chart_values=chart_values)
        try:
            up(result)
            yield result
        finally:
            if down is not None:
                down(result)
            result.stop()

    return stack


def with_api(stack: Stack, action: Action[T]) -> T:
    """Run ``action`` with a client of ``stack`` (closed afterwards), from synchronous code."""

    async def run() -> T:
        client = stack.api()
        try:
            return await action(client)
        finally:
            await client.close()

    return asyncio.run(run())


def serve(
    stack: Stack,
    nodes: Sequence[str],
    *,
    inventories: Mapping[str, Path] | None = None,
    labels: Callable[[str], Mapping[str, str]] | None = None,
    prepare: Action[None] | None = None,
    schedulers: Up | None = None,
    plugin_args: Sequence[str] = (),
    webhook: bool = True,
) -> None:
    """The usual bring-up: kwok ``nodes`` (with ``labels(name)``), then ``prepare`` (more
    objects), one ``hami scheduler`` (or ``schedulers(stack)``), ``hami device-plugin
    --simulate`` for the nodes (``inventories``, by default the generic kwok inventory), then
    wait until the webhook mutates (unless ``webhook`` is False) and every node carries its
    registration."""

    async def create(api: LightkubeAPI) -> None:
        for name in nodes:
            await create_node(api, name, labels=labels(name) if labels else None)
        if prepare is not None:
            await prepare(api)

    with_api(stack, create)
    if schedulers is None:
        stack.scheduler()
    else:
        schedulers(stack)
    stack.plugin(inventories or dict.fromkeys(nodes, KWOK_GENERIC), plugin_args)
    if webhook:
        stack.wait_serving(nodes)
    else:
        with_api(stack, lambda api: wait_registered(api, nodes))


def webhook(stack: Stack) -> None:
    """Register the webhook and wait until it mutates pods (no device plugin needed)."""
    with_api(stack, lambda api: register_webhook(api, stack.port, stack.ca))


@pytest_asyncio.fixture(loop_scope="function")
async def api(stack: Stack) -> AsyncIterator[LightkubeAPI]:
    """A client of the module's stack, closed after the test."""
    client = stack.api()
    try:
        yield client
    finally:
        await client.close()
