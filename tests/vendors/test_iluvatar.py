"""Iluvatar (wire-format.md §4.6): per-chip keys, whole-card admission, env, annotations."""

from __future__ import annotations

from hami.api.types import ContainerDevice
from hami.core.model import ContainerRequest
from hami.core.status import Reason, Unfit
from hami.core.vendor import Pick
from hami.vendors.config import IluvatarChip
from hami.vendors.iluvatar import IluvatarVendor
from tests.vendors.helpers import container, fit

V = IluvatarVendor(IluvatarChip.named("BI-V100"))
REGISTER = (
    "IL-0,4,32768,100,BI-V100,0,true,0,hami-core:IL-1,4,32768,100,BI-V100,0,true,1,hami-core:"
)


def test_keys_follow_the_chip() -> None:
    assert V.key == "BI-V100"
    assert V.spec.register == "hami.io/node-BI-V100-register"
    assert V.spec.handshake == "hami.io/node-handshake-BI-V100"
    assert [d.uuid for d in V.node_devices({V.spec.register: REGISTER})] == ["IL-0", "IL-1"]


def test_admission_takes_whole_cards_and_names_the_container() -> None:
    admitted = V.admit_container(container("app", **{"iluvatar_ai__BI-V100-vgpu": 2}), "c")
    assert admitted.uses_vendor
    limits = admitted.container["resources"]["limits"]  # type: ignore[index]
    assert limits["iluvatar.ai/BI-V100.vCore"] == 200
    assert admitted.env == {"SOL_CONTINER_NAME": "app"}
    assert not V.admit_container(container(nvidia_com__gpu=1), "c").uses_vendor


def test_requests_in_256_mib_units_cores_default_zero() -> None:
    req = V.parse_container(
        container(**{"iluvatar_ai__BI-V100-vgpu": 1, "iluvatar_ai__BI-V100.vMem": 16}), "c"
    )
    assert req == ContainerRequest(vendor="BI-V100", nums=1, memreq=4096, mem_pct=0, coresreq=0)


def test_fit_uuid_filter_and_annotations() -> None:
    devices = V.node_devices({V.spec.register: REGISTER})
    req = ContainerRequest(vendor="BI-V100", nums=1, memreq=4096, mem_pct=0)
    unfit = fit(V, devices, req, annotations={"hami.io/use-BI-V100-uuid": "other"})
    assert isinstance(unfit, Unfit)
    assert unfit.counts == {Reason.CARD_UUID_MISMATCH: 2}
    picks = fit(V, devices, req, annotations={"hami.io/no-use-BI-V100-uuid": "IL-0"})
    assert isinstance(picks, tuple)
    dev = picks[0].device
    assert dev == ContainerDevice("IL-1", "BI-V100", 4096, 0)
    assert V.pod_annotations(((dev,),), [[Pick(1, dev)]]) == {
        "hami.io/BI-V100-devices-to-allocate": "IL-1,BI-V100,4096,0:;",
        "hami.io/BI-V100-devices-allocated": "IL-1,BI-V100,4096,0:;",
    }
