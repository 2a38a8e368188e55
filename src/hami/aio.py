"""Running the long-lived asyncio services (scheduler, device plugin, monitor) on uvloop.

uvloop's event loop, transports and TLS are implemented in C; on the 2-core benchmark machine
they cut the scheduler's CPU per pod markedly (docs/decisions.md, D-uvloop). Where uvloop is not
installed (it is a dependency on Linux and macOS only), the standard loop is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop constructor, or None for asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the fastest available loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
