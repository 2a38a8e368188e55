"""The host under a real node: what it needs (root, Debian packages, no other node), what it
looked like before ``up`` (so ``down`` can put it back), and the clean-up steps themselves."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hami.node.errors import NodeError
from hami.node.render import BRIDGE, CDI_SPEC_DIR, CNI_BIN_DIR, KUBELET_ROOT, KUBELET_SYSCTLS

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_NAMES = ("kubepods", "k8s.io")  # made by kubelet and by containerd's CRI plugin
# host paths kubelet, containerd, the shims and libcni use whatever they are configured with
FIXED_PATHS = (
    KUBELET_ROOT,
    Path("/run/containerd"),
    Path("/var/lib/cni"),
    Path("/var/log/containers"),
    Path("/var/log/pods"),
    CDI_SPEC_DIR,
)
WATCHED_SYSCTLS = ("net/ipv4/ip_forward", *KUBELET_SYSCTLS)

# Debian package → a file it installs that the node needs (containerd itself is built with the
# node binaries: bookworm's 1.6 has no CDI)
PACKAGES = {
    "runc": Path("/usr/sbin/runc"),
    "containernetworking-plugins": CNI_BIN_DIR / "bridge",
    "busybox-static": Path("/bin/busybox"),
}
INSTALL_HINT = (
    "install them with `make node-deps` (as root: apt-get install --no-install-recommends {})"
)


def missing_packages(packages: dict[str, Path] | None = None) -> list[str]:
    """Debian packages whose marker file is absent."""
    wanted = PACKAGES if packages is None else packages
    return [name for name, marker in wanted.items() if not marker.exists()]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def preflight(*, is_root: bool | None = None, ports: Sequence[int] = ()) -> None:
    """Raise one clear :class:`NodeError` if this host cannot run a real node now."""
    if not (os.geteuid() == 0 if is_root is None else is_root):
        raise NodeError(
            "a real node needs root (it starts containerd and kubelet, mounts, and makes a "
            "network bridge): run it as root"
        )
    missing = missing_packages()
    if missing:
        names = " ".join(missing)
        raise NodeError(f"missing Debian packages: {names}; " + INSTALL_HINT.format(names))
    for tool in ("unshare", "mount", "umount", "ip", "gcc"):
        if shutil.which(tool) is None:
            raise NodeError(f"`{tool}` is not on PATH; the real node needs it")
    busy = [port for port in ports if port_in_use(port) or port_in_use(port, "0.0.0.0")]
    if busy:
        raise NodeError(
            f"port {', '.join(map(str, busy))} is in use on this machine: choose another "
            "(--kubelet-port) or stop what listens there"
        )
    if link_exists(BRIDGE):
        raise NodeError(
            f"a real node is already up on this machine (bridge {BRIDGE} exists); one real node "
            "per machine: stop it with `hami node down`"
        )


# --- what the host looked like ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostSnapshot:
    """The parts of the host a real node touches, comparable before and after."""

    paths: tuple[str, ...]  # FIXED_PATHS that exist
    cgroups: tuple[str, ...]  # <controller>/<name> for CGROUP_NAMES that exist
    sysctls: tuple[tuple[str, str], ...]
    links: tuple[str, ...]
    mounts: tuple[str, ...]
    firewall_rules: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, list[Any]]) -> HostSnapshot:
        sysctls = tuple((str(pair[0]), str(pair[1])) for pair in raw["sysctls"])
        return cls(
            paths=tuple(str(p) for p in raw["paths"]),
            cgroups=tuple(str(c) for c in raw["cgroups"]),
            sysctls=sysctls,
            links=tuple(str(link) for link in raw["links"]),
            mounts=tuple(str(m) for m in raw["mounts"]),
            firewall_rules=tuple(str(r) for r in raw.get("firewall_rules", ())),
        )


def difference(before: HostSnapshot, after: HostSnapshot) -> str:
    """What changed between two snapshots, one clause per field."""
    lines = []
    for name in ("paths", "cgroups", "sysctls", "links", "mounts", "firewall_rules"):
        was, now = set(getattr(before, name)), set(getattr(after, name))
        if was != now:
            lines.append(f"{name}: added {sorted(now - was)}, removed {sorted(was - now)}")
    return "; ".join(lines) or "no difference"


def take_snapshot() -> HostSnapshot:
    return HostSnapshot(
        paths=tuple(str(p) for p in FIXED_PATHS if p.exists()),
        cgroups=tuple(sorted(_node_cgroups())),
        sysctls=tuple((name, read_sysctl(name)) for name in WATCHED_SYSCTLS),
        links=tuple(sorted(links())),
        mounts=tuple(sorted(mount_points())),
        firewall_rules=tuple(firewall_rules()),
    )


def _node_cgroups() -> Iterable[str]:
    if not CGROUP_ROOT.is_dir():
        return
    for controller in CGROUP_ROOT.iterdir():
        for name in CGROUP_NAMES:
            if (controller / name).is_dir():
                yield f"{controller.name}/{name}"


def read_sysctl(name: str) -> str:
    try:
        return (Path("/proc/sys") / name).read_text().strip()
    except OSError:
        return ""


def write_sysctl(name: str, value: str) -> None:
    (Path("/proc/sys") / name).write_text(value + "\n")


def links() -> list[str]:
    return [p.name for p in Path("/sys/class/net").iterdir()]


def link_exists(name: str) -> bool:
    return (Path("/sys/class/net") / name).exists()


def mount_points() -> list[str]:
    """Mount points of this mount namespace (octal escapes decoded)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if len(fields) > 4:
            points.append(fields[4].encode().decode("unicode_escape"))
    return points


# --- the network -------------------------------------------------------------------------------


def run(command: Sequence[str], what: str) -> None:
    result = subprocess.run(list(command), capture_output=True, text=True)
    if result.returncode != 0:
        raise NodeError(f"{what} failed: {' '.join(command)}: {result.stderr.strip()}")


def add_bridge(name: str, address: str) -> None:
    """A host-only bridge carrying the node IP (no uplink, no forwarding)."""
    run(["ip", "link", "add", name, "type", "bridge"], f"creating bridge {name}")
    run(["ip", "addr", "add", address, "dev", name], f"addressing bridge {name}")
    run(["ip", "link", "set", name, "up"], f"bringing up bridge {name}")


def delete_link(name: str) -> None:
    if link_exists(name):
        subprocess.run(["ip", "link", "delete", name], capture_output=True)


# --- the in-cluster API address (what kube-proxy would do for the `kubernetes` Service) ---------

NAT_CHAIN = "HAMI-NODE"


def firewall_rules() -> list[str]:
    """``<tool> -t <table> -S`` of IPv4 and IPv6 filter, nat and mangle, each line prefixed
    with tool and table (empty where iptables is missing or refuses)."""
    rules = []
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in ("filter", "nat", "mangle"):
            done = subprocess.run([tool, "-t", table, "-S"], capture_output=True, text=True)
            if done.returncode == 0:
                rules += [f"{tool} {table} {line}" for line in done.stdout.splitlines()]
    return rules


def route_service_ip(bridge: str, service_ip: str, port: int) -> None:
    """Pods on ``bridge`` reach ``service_ip:443`` as the apiserver on 127.0.0.1:``port``: a
    DNAT rule in a chain of ours, and route_localnet on our own bridge (gone with it)."""
    if shutil.which("iptables") is None:
        raise NodeError("iptables is needed for in-cluster API access: apt-get install iptables")
    target = f"127.0.0.1:{port}"
    run(["iptables", "-t", "nat", "-N", NAT_CHAIN], "creating the nat chain")
    rule = ["-d", f"{service_ip}/32", "-p", "tcp", "--dport", "443", "-j", "DNAT"]
    run(["iptables", "-t", "nat", "-A", NAT_CHAIN, *rule, "--to-destination", target], "DNAT")
    jump = ["PREROUTING", "-i", bridge, "-j", NAT_CHAIN]
    run(["iptables", "-t", "nat", "-I", *jump], "jumping to the nat chain")
    write_sysctl(f"net/ipv4/conf/{bridge}/route_localnet", "1")


def unroute_service_ip(bridge: str) -> None:
    if not any(NAT_CHAIN in rule for rule in firewall_rules()):
        return
    for args in (["-D", "PREROUTING", "-i", bridge, "-j", NAT_CHAIN], ["-F", NAT_CHAIN]):
        subprocess.run(["iptables", "-t", "nat", *args], capture_output=True)
    subprocess.run(["iptables", "-t", "nat", "-X", NAT_CHAIN], capture_output=True)


# --- clean-up ----------------------------------------------------------------------------------


def unmount_under(roots: Sequence[Path]) -> list[str]:
    """Unmount every mount point at or below ``roots``, deepest first (lazily when busy)."""
    prefixes = [str(r.resolve()) for r in roots]
    inside = [
        m
        for m in mount_points()
        if any(m == p or m.startswith(p.rstrip("/") + "/") for p in prefixes)
    ]
    for point in sorted(set(inside), key=lambda m: m.count("/"), reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)
    return inside


def cgroup_pids(names: Sequence[str] = CGROUP_NAMES) -> set[int]:
    """Processes in the node's cgroup trees (any controller)."""
    found: set[int] = set()
    if not CGROUP_ROOT.is_dir():
        return found
    for controller in CGROUP_ROOT.iterdir():
        for name in names:
            for procs in (
                (controller / name).rglob("cgroup.procs") if (controller / name).is_dir() else ()
            ):
                try:
                    found |= {int(p) for p in procs.read_text().split()}
                except OSError:
                    continue
    return found


def kill_pids(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def processes_with(fragment: str) -> list[int]:
    """Live processes whose command line contains ``fragment``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fragment in cmdline:
            found.append(int(entry.name))
    return found


def remove_cgroups(before: Sequence[str]) -> None:
    """rmdir the node's cgroup trees (deepest first) that did not exist before."""
    if not CGROUP_ROOT.is_dir():
        return
    for controller in CGROUP_ROOT.iterdir():
        for name in CGROUP_NAMES:
            top = controller / name
            if f"{controller.name}/{name}" in before or not top.is_dir():
                continue
            for directory in sorted(
                (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
            ):
                _rmdir(directory)
            _rmdir(top)


def _rmdir(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


def restore(before: HostSnapshot) -> None:
    """Put back the sysctls and remove the fixed paths that did not exist before."""
    for name, value in before.sysctls:
        if value and read_sysctl(name) != value:
            write_sysctl(name, value)
    for path in FIXED_PATHS:
        if str(path) not in before.paths and path.exists():
            shutil.rmtree(path, ignore_errors=True)
