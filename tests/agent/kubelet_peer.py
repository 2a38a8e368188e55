"""Driving the Go kubelet peer (hack/kubelet/peer): build it, run it, talk JSON lines."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.agent.builders import REPO

BUILD_SCRIPT = REPO / "hack" / "kubelet" / "build-peer.sh"

Event = dict[str, Any]


def build_peer() -> Path:
    """The cached peer binary; building it needs Go >= 1.26 (a failure fails, never skips)."""
    done = subprocess.run(
        [str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"cannot build the kubelet peer ({BUILD_SCRIPT}):\n{done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1])


class KubeletPeer:
    """A running kubelet-peer process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.seen: list[Event] = []

    @classmethod
    async def start(cls, binary: Path, directory: Path, resource: str) -> KubeletPeer:
        process = await asyncio.create_subprocess_exec(
            str(binary),
            "--dir",
            str(directory),
            "--resource",
            resource,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        peer = cls(process)
        await peer.expect("ready")
        return peer

    async def expect(
        self, event: str, check: Callable[[Event], bool] = lambda e: True, timeout: float = 10
    ) -> Event:
        """The next line of kind ``event`` that passes ``check`` (every line is kept in `seen`)."""
        return await self._next(lambda e: e.get("event") == event and check(e), timeout)

    async def send(self, command: Event) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        await self.process.stdin.drain()

    async def call(self, command: Event, timeout: float = 10) -> Event:
        """Send a command; its ``result`` or ``error`` line."""
        await self.send(command)
        op = command["op"]
        return await self._next(
            lambda e: e.get("event") in ("result", "error") and e.get("op") == op, timeout
        )

    async def _next(self, match: Callable[[Event], bool], timeout: float) -> Event:
        async def read() -> Event:
            assert self.process.stdout is not None
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    raise AssertionError(f"kubelet peer exited; it printed {self.seen}")
                item: Event = json.loads(line)
                self.seen.append(item)
                if match(item):
                    return item

        return await asyncio.wait_for(read(), timeout)

    async def stop(self) -> None:
        if self.process.returncode is None:
            try:
                await self.send({"op": "quit"})
                await asyncio.wait_for(self.process.wait(), 5)
            except (TimeoutError, BrokenPipeError, ConnectionResetError):
                self.process.kill()
                await self.process.wait()
