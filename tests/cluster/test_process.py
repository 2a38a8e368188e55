from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from hami.cluster.errors import ComponentStartError
from hami.cluster.process import Component, group_members, log_tail, pid_alive

PY = sys.executable


def _component(tmp_path: Path, name: str, code: str) -> Component:
    return Component(name, [PY, "-c", code], tmp_path / "logs" / f"{name}.log")


@pytest.mark.timeout(30)
def test_early_exit_names_the_component_and_quotes_its_last_lines(tmp_path: Path) -> None:
    code = "import sys\nfor i in range(100): print(f'line {i}')\nsys.exit(3)"
    component = _component(tmp_path, "etcd", code)
    component.start(die_with_parent=True)
    with pytest.raises(ComponentStartError) as caught:
        component.wait_ready(lambda: False, timeout=20)
    message = str(caught.value)
    assert message.startswith("etcd failed to start: exited with code 3")
    assert "line 99" in message and "line 70" in message
    assert "line 69\n" not in message, "only the tail is quoted"
    assert str(component.log_path) in message
    assert caught.value.component == "etcd"


@pytest.mark.timeout(30)
def test_timeout_names_the_component(tmp_path: Path) -> None:
    component = _component(
        tmp_path, "kwok", "import time; print('waiting', flush=True); time.sleep(60)"
    )
    component.start(die_with_parent=True)
    try:
        with pytest.raises(ComponentStartError, match=r"kwok failed to start: not ready after 1 s"):
            component.wait_ready(lambda: False, timeout=1.0)
        assert "waiting" in log_tail(component.log_path)
    finally:
        component.stop(grace=5)


@pytest.mark.timeout(30)
def test_ready_probe_returns_once_true(tmp_path: Path) -> None:
    component = _component(tmp_path, "x", "import time; time.sleep(60)")
    component.start(die_with_parent=True)
    calls = iter([False, False, True])
    try:
        component.wait_ready(lambda: next(calls), timeout=10, interval=0.01)
    finally:
        component.stop(grace=5)


@pytest.mark.timeout(30)
def test_stop_kills_the_whole_group_even_if_sigterm_is_ignored(tmp_path: Path) -> None:
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('up', flush=True); time.sleep(60)"
    )
    component = _component(tmp_path, "stubborn", code)
    component.start(die_with_parent=True)
    component.wait_ready(lambda: "up" in log_tail(component.log_path), timeout=10)
    pid = component.pid
    assert pid is not None and len(group_members(pid)) == 2
    began = time.monotonic()
    component.stop(grace=0.5)
    assert time.monotonic() - began < 5
    deadline = time.monotonic() + 5
    while group_members(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)
    assert group_members(pid) == []


def test_log_tail_of_missing_and_empty_logs(tmp_path: Path) -> None:
    assert log_tail(tmp_path / "nope.log").startswith("(no log:")
    (tmp_path / "empty.log").write_text("")
    assert log_tail(tmp_path / "empty.log") == "(log is empty)"
