"""`hami demo` as a user runs it: `up` records the scheduler's port in its state file and
closes with `hami explain` and `hami webui` commands that work as printed; `apply` shows a pod
the webhook refuses as REJECTED (exit 1) and, for a pod the default scheduler cannot place,
kube-scheduler's reason from the PodScheduled condition."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from hami.cluster.ports import free_port
from hami.demo.stack import HAMI

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
NAME = "e2e-demo"
CACHE = Path(os.environ.get("HAMI_CACHE") or Path.home() / ".cache" / "hami")

PODS = [
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "fits", "namespace": "team"},
        "spec": {
            "containers": [
                {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
            ]
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "huge", "namespace": "team"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "x",
                    "resources": {"limits": {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "900000"}},
                }
            ]
        },
    },
]
APPLY = [
    {  # the webhook refuses privileged GPU containers
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged", "namespace": "team"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "x",
                    "securityContext": {"privileged": True},
                    "resources": {"limits": {"nvidia.com/gpu": "1"}},
                }
            ]
        },
    },
    {  # no GPU: the default scheduler alone decides, and no node matches
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nowhere", "namespace": "team"},
        "spec": {
            "nodeSelector": {"zone": "mars"},
            "containers": [{"name": "c", "image": "x"}],
        },
    },
]


def hami(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HAMI, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], str, Path]]:
    cache = tmp_path_factory.mktemp("hami-cache")
    for pointer in ("k8s-current.json", "helm-current.json"):  # the built binaries, reused
        if (CACHE / pointer).is_file():
            shutil.copy(CACHE / pointer, cache / pointer)
    env = {**os.environ, "HAMI_CACHE": str(cache), "COLUMNS": "200"}
    pods = cache / "pods.yaml"
    pods.write_text(yaml.safe_dump_all(PODS))
    try:
        up = hami(env, "demo", "up", "--nvidia-only", "--name", NAME, "--pods", str(pods))
        assert up.returncode == 0, up.stdout + up.stderr
        yield env, up.stdout, cache / "run" / NAME
    finally:
        hami(env, "demo", "down", "--name", NAME)


def printed(output: str, label: str) -> list[str]:
    line = next(ln for ln in output.splitlines() if ln.strip().startswith(label))
    command = line.split(label, 1)[1].split("   (")[0]
    words = shlex.split(command)
    assert words[0] in ("hami", HAMI), line
    return words[1:]


def test_state_file_records_the_scheduler(demo: tuple[dict[str, str], str, Path]) -> None:
    _, _, run_dir = demo
    state = json.loads((run_dir / "state.json").read_text())
    port = state["scheduler"]["port"]
    assert state["scheduler"]["url"] == f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=state["scheduler"]["ca"])
    response = httpx.get(f"https://127.0.0.1:{port}/readyz", verify=context, trust_env=False)
    assert response.status_code == 200


def test_the_printed_explain_and_webui_commands_work(
    demo: tuple[dict[str, str], str, Path],
) -> None:
    env, output, _ = demo
    assert "team/huge" in output and "PENDING" in output
    explain = printed(output, "why it waits:")
    assert "team/huge" in explain
    result = hami(env, *explain, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "huge" in result.stdout

    webui = printed(output, "web UI:")
    port = free_port()
    process = subprocess.Popen([HAMI, *webui, "--port", str(port)], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/", timeout=2, trust_env=False)
                break
            except httpx.HTTPError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.3)
        assert body.status_code == 200
    finally:
        process.terminate()
        process.wait(10)


def test_apply_says_rejected_and_the_default_schedulers_reason(
    demo: tuple[dict[str, str], str, Path],
) -> None:
    env, _, run_dir = demo
    file = run_dir / "apply.yaml"
    file.write_text(yaml.safe_dump_all(APPLY))
    result = hami(env, "demo", "apply", str(file), "--name", NAME, "--timeout", "30")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"team/privileged\s+REJECTED\n.*privileged", out), out
    assert re.search(r"team/nowhere\s+PENDING\n\s+Unschedulable: 0/\d+ nodes are available", out), (
        out
    )
    assert "1 of 2 pods were rejected" in result.stderr
