"""The generated device config configures every enabled vendor (issue #18)."""

from __future__ import annotations

import pytest
import yaml

from hami.config import parse_config
from hami.vendors import registry
from tests.chart.helm import RELEASE, VALUES, find, render

pytestmark = pytest.mark.e2e  # needs the helm binary that `make helm-bin` builds


def _vendors(values: str | None) -> set[str]:
    docs = render(VALUES[values] if values else None)
    text = find(docs, "ConfigMap", f"{RELEASE}-scheduler-device")["data"]["device-config.yaml"]
    return set(registry.build(parse_config(yaml.safe_load(text), "chart")))


def test_every_enabled_vendor_has_its_section() -> None:
    """Not only the managed resources: the extender builds every enabled vendor."""
    expected = {k for row in registry.TABLE if not row.many for k in row.vendor_keys()}
    expected |= {"MR-V100", "MR-V50", "BI-V150", "BI-V100"}  # the chart's Iluvatar chips
    assert _vendors("all-vendors") == expected


def test_default_values_configure_nvidia_only() -> None:
    assert _vendors(None) == {"NVIDIA"}
