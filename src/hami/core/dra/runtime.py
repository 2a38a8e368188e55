"""Whether a node's container runtime applies the CDI devices a prepared claim names.

kubelet hands the plugin's CDI device IDs to the runtime; a runtime without CDI starts the
container anyway — without libvgpu's env and mounts, so without its limits. The node's
``status.nodeInfo.containerRuntimeVersion`` (``containerd://1.6.20``, ``cri-o://1.30.2``) says
enough to refuse the known-bad ones before any claim is allocated to the node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# first release that applies CDI devices from the CRI request (kubelet's DRA path)
CDI_SINCE: dict[str, tuple[int, int]] = {"containerd": (1, 7), "cri-o": (1, 23)}
# runtimes whose CDI is off unless configured (containerd 1.7: `enable_cdi`, on from 2.0)
CDI_OPT_IN: dict[str, tuple[int, int]] = {"containerd": (2, 0)}
_VERSION = re.compile(r"^([a-z0-9.-]+)://v?(\d+)\.(\d+)")


@dataclass(frozen=True, slots=True)
class CdiSupport:
    """``problem``: why claims prepared here would run without their limits (None: fine);
    ``caveat``: what must hold for them not to (a config switch), or None."""

    problem: str | None = None
    caveat: str | None = None


def cdi_support(runtime_version: str) -> CdiSupport:
    """Judge ``runtime_version`` as a Node reports it; an unknown runtime gets a caveat."""
    found = _VERSION.match(runtime_version.strip())
    if found is None:
        return CdiSupport(caveat=f"cannot tell whether runtime {runtime_version!r} applies CDI")
    name, version = found[1], (int(found[2]), int(found[3]))
    since = CDI_SINCE.get(name)
    if since is None:
        return CdiSupport(caveat=f"cannot tell whether runtime {runtime_version!r} applies CDI")
    if version < since:
        wanted = ".".join(map(str, since))
        return CdiSupport(
            problem=(
                f"container runtime {runtime_version} applies no CDI devices, so containers "
                f"of DRA claims would run without their GPU limits; {name} >= {wanted} is needed"
            )
        )
    opt_in_until = CDI_OPT_IN.get(name)
    if opt_in_until is not None and version < opt_in_until:
        return CdiSupport(
            caveat=f"{runtime_version} applies CDI only with enable_cdi = true in its CRI config"
        )
    return CdiSupport()
