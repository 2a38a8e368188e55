"""Which container runtimes apply the CDI devices a prepared claim names."""

from __future__ import annotations

import pytest

from hami.core.dra.runtime import cdi_support


@pytest.mark.parametrize(
    "version", ["containerd://1.6.20", "cri-o://1.22.5", "containerd://v1.5.0"]
)
def test_runtimes_without_cdi_are_a_problem_named_with_the_version_needed(version: str) -> None:
    support = cdi_support(version)
    assert support.problem is not None and version.split("://v")[-1] in support.problem
    assert "without their GPU limits" in support.problem and ">= 1." in support.problem


def test_containerd_1_7_needs_its_switch_and_2_0_has_cdi_on() -> None:
    for version in ("containerd://1.7.0", "containerd://1.7.35"):
        support = cdi_support(version)
        assert support.problem is None
        assert support.caveat is not None and "enable_cdi = true" in support.caveat
    assert cdi_support("containerd://2.1.4").problem is None
    assert cdi_support("containerd://2.1.4").caveat is None
    assert cdi_support("cri-o://1.31.0").caveat is None


@pytest.mark.parametrize("version", ["", "docker://27.1.1", "kwok-v0.8.0", "remote://1.0"])
def test_an_unknown_runtime_is_a_caveat_not_a_refusal(version: str) -> None:
    support = cdi_support(version)
    assert support.problem is None and support.caveat is not None
