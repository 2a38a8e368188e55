"""`hami chart migrate-values`: a values file of HAMi's chart (2.10) as one for hami's chart.

Keys both charts have (same meaning) are copied; HAMi keys that became something else are
converted (vendor resource names into ``devices.<vendor>.customresources``,
``scheduler.metricsBindAddress`` into ``scheduler.service.monitorTargetPort``, kube-scheduler's
``extraNewArgs`` into ``extraArgs``, image pull secrets into ``global.imagePullSecrets``); the
rest is listed on stderr, each with the reason: *not carried over* where hami behaves
differently, *left out* where hami does the same without the key. The known keys and the
reasons are the chart's own (``charts/hami/files/values-keys.yaml``, which
``templates/_validate.tpl`` uses too).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from hami import yamlio

CHART = Path(__file__).resolve().parents[2] / "charts" / "hami"
KEYS_FILE = "files/values-keys.yaml"

app = typer.Typer(
    help="Helm chart helpers: convert a values file of HAMi's chart (2.10) for hami's chart.",
    no_args_is_help=True,
    add_completion=False,
)


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("true", "1", "yes", "on")


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _short(value: Any) -> str:
    """A value as the report shows it (a section by its `enabled`)."""
    if isinstance(value, dict) and "enabled" in value:
        return f"enabled: {value['enabled']}"
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")
    return text if len(text) <= 40 else text[:37] + "..."


# HAMi's vendor resource-name keys: (vendor section of hami's `devices`, HAMi's default name)
VENDOR_NAMES: dict[str, tuple[str, str]] = {
    "mluResourceName": ("cambricon", "cambricon.com/vmlu"),
    "mluResourceMem": ("cambricon", "cambricon.com/mlu.smlu.vmemory"),
    "mluResourceCores": ("cambricon", "cambricon.com/mlu.smlu.vcore"),
    "dcuResourceName": ("hygon", "hygon.com/dcunum"),
    "dcuResourceMem": ("hygon", "hygon.com/dcumem"),
    "dcuResourceCores": ("hygon", "hygon.com/dcucores"),
    "metaxResourceName": ("metax", "metax-tech.com/sgpu"),
    "metaxResourceCore": ("metax", "metax-tech.com/vcore"),
    "metaxResourceMem": ("metax", "metax-tech.com/vmemory"),
    "enflameResourceNameDRSGCU": ("enflame", "enflame.com/drs-gcu"),
    "enflameResourceNameGCUMemory": ("enflame", "enflame.com/gcu-memory"),
    "enflameResourceNameGCUCore": ("enflame", "enflame.com/gcu-core"),
    "kunlunResourceName": ("kunlun", "kunlunxin.com/xpu"),
    "kunlunResourceVCountName": ("kunlun", "kunlunxin.com/vxpu"),
    "kunlunResourceVMemoryName": ("kunlun", "kunlunxin.com/vxpu-memory"),
    "vastaiResourceName": ("vastai", "vastaitech.com/va"),
    "birenResourceName": ("biren", "birentech.com/gpu"),
}

# HAMi keys whose value here means "off" or "as hami does it": left out without loss.
SAME_WHEN: dict[str, Callable[[Any], bool]] = {
    "podSecurityPolicy": lambda v: not _get(v, "enabled"),
    "mockDevicePlugin": lambda v: not _get(v, "enabled"),
    "global.managedNodeSelectorEnable": lambda v: not _truthy(v),
    "metaxsGPUTopologyAware": lambda v: not _truthy(v),
    "scheduler.livenessProbe": lambda v: not _truthy(v),
    "scheduler.kubeScheduler.enabled": _truthy,
    "scheduler.admissionWebhook.customURL": lambda v: not _get(v, "enabled"),
    "scheduler.admissionWebhook.manageNamespaceSelector": _truthy,
    "devicePlugin.gpuOperatorToolkitReady": lambda v: not _get(v, "enabled"),
    "devicePlugin.createRuntimeClass": lambda v: not _truthy(v),
    "devicePlugin.passDeviceSpecsEnabled": lambda v: not _truthy(v),
    "devicePlugin.hostNetwork": lambda v: not _truthy(v),
    "devicePlugin.gdrcopyEnabled": lambda v: not _truthy(v),
    "devicePlugin.gdsEnabled": lambda v: not _truthy(v),
    "devicePlugin.mofedEnabled": lambda v: not _truthy(v),
    "devicePlugin.nvidiaHookPath": lambda v: v in (None, ""),
    "devicePlugin.nvidiaDriverRoot": lambda v: v in (None, ""),
    "devices.ascend.hamiVnpuCore": lambda v: not _truthy(v),
}

# klog / HAMi debug flags: hami's components log with Python logging (scheduler.extender.logLevel)
KLOG_FLAG = re.compile(r"^--?(v|debug|logtostderr|alsologtostderr|log_dir|log_file|vmodule)(=.*)?$")
DEFAULT_HOOK = "/usr/local"


@dataclass
class Migration:
    """The hami values and what was not carried over (path, reason)."""

    values: dict[str, Any] = field(default_factory=dict)
    not_carried: list[tuple[str, str]] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)
    converted: list[tuple[str, str]] = field(default_factory=list)

    def set(self, path: str, value: Any) -> None:
        node = self.values
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    def get(self, path: str) -> Any:
        node: Any = self.values
        for key in path.split("."):
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    def pull_secrets(self, path: str, secrets: Any) -> None:
        if not secrets:
            return
        merged = list(self.get("global.imagePullSecrets") or [])
        merged += [s for s in secrets if s not in merged]
        self.set("global.imagePullSecrets", merged)
        self.converted.append((path, "merged into global.imagePullSecrets"))


def load_keys(chart: Path) -> dict[str, Any]:
    path = chart / KEYS_FILE
    if not path.is_file():
        raise typer.BadParameter(
            f"{path} not found (a checkout's charts/hami)", param_hint="--chart"
        )
    keys = dict(yamlio.load(path.read_text(encoding="utf-8")))
    values = yamlio.load((chart / "values.yaml").read_text(encoding="utf-8"))
    keys["vendors"] = {
        vendor: list(section.get("customresources") or [])
        for vendor, section in values["devices"].items()
        if isinstance(section, dict)
    }
    return keys


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            row.append(min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = row
    return previous[-1]


def nearest(key: str, known: dict[str, Any]) -> str:
    """The known key with the smallest edit distance, as templates/_validate.tpl picks it."""
    return min(sorted(known), key=lambda k: edit_distance(key.lower(), k.lower()))


class Migrator:
    """One HAMi values file into a :class:`Migration`; a method per HAMi key that changed."""

    def __init__(self, hami_values: dict[str, Any], keys: dict[str, Any]) -> None:
        self.source = hami_values
        self.keys = keys
        self.moved: dict[str, str] = keys["hami210"]
        self.hook = str(_get(hami_values.get("global"), "gpuHookPath") or DEFAULT_HOOK)
        self.out = Migration()
        self.rules: dict[str, Callable[[str, Any], None]] = {
            "global.managedNodeSelector": self.managed_node_selector,
            "global.imageTag": self.image_tag,
            "scheduler.overwriteEnv": self.overwrite_env,
            "scheduler.metricsBindAddress": self.metrics_bind_address,
            "scheduler.service.httpTargetPort": self.http_target_port,
            "scheduler.kubeScheduler.extraNewArgs": self.extra_new_args,
            "scheduler.kubeScheduler.extraArgs": self.legacy_args,
            "scheduler.extender.extraArgs": self.component_args,
            "devicePlugin.extraArgs": self.component_args,
            "devicePlugin.monitor.extraArgs": self.component_args,
            "devicePlugin.libPath": self.hook_path,
            "devicePlugin.monitor.ctrPath": self.hook_path,
            "scheduler.extender.image": self.hami_image,
            "devicePlugin.image": self.hami_image,
            "devicePlugin.monitor.image": self.hami_image,
            "scheduler.patch.image": self.certgen_image,
            "scheduler.patch.imageNew": self.certgen_image,
        }

    def run(self) -> Migration:
        self.walk(self.source, self.keys["known"], "")
        return self.out

    def walk(self, values: dict[str, Any], known: dict[str, Any], prefix: str) -> None:
        out = self.out
        for key, value in values.items():
            path = prefix + key
            if self.special(path, value):
                continue
            if key in known:
                if isinstance(known[key], dict) and isinstance(value, dict):
                    self.walk(value, known[key], path + ".")
                else:
                    out.set(path, value)
            elif path in self.moved:
                out.not_carried.append((path, self.moved[path]))
            else:
                hint = f"unknown key; the nearest known key is {prefix}{nearest(key, known)}"
                out.not_carried.append((path, hint))

    def special(self, path: str, value: Any) -> bool:
        """Convert ``path`` if it is one of the HAMi keys that became something else."""
        if path in VENDOR_NAMES:
            self.vendor_name(path, value)
        elif path in SAME_WHEN and SAME_WHEN[path](value):
            self.out.left_out.append((path, f"{_short(value)}: {self.moved[path]}"))
        elif path in self.rules:
            self.rules[path](path, value)
        elif path.endswith(".pullSecrets"):
            if value:
                self.out.pull_secrets(path, value)
            else:
                self.out.left_out.append((path, "empty"))
        else:
            return False
        return True

    def vendor_name(self, path: str, value: Any) -> None:
        vendor, default = VENDOR_NAMES[path]
        if value == default:
            self.out.left_out.append((path, f"{default} is in devices.{vendor}.customresources"))
            return
        # hami's default list with HAMi's default name replaced by this one
        names = self.out.get(f"devices.{vendor}.customresources")
        if names is None:
            names = list(self.keys["vendors"][vendor])
        self.out.set(
            f"devices.{vendor}.customresources", [value if n == default else n for n in names]
        )
        self.out.converted.append((path, f"devices.{vendor}.customresources: {value}"))

    def managed_node_selector(self, path: str, value: Any) -> None:
        if _truthy(_get(self.source.get("global"), "managedNodeSelectorEnable")):
            self.out.not_carried.append((path, self.moved[path]))
        else:
            self.out.left_out.append((path, "not enabled (managedNodeSelectorEnable)"))

    def image_tag(self, path: str, value: Any) -> None:
        if value:
            reason = f"{value!r} tags HAMi's image; hami's image.tag defaults to the chart's"
            self.out.not_carried.append((path, reason))

    def overwrite_env(self, path: str, value: Any) -> None:
        self.out.set(path, _truthy(value))

    def metrics_bind_address(self, path: str, value: Any) -> None:
        port = int(str(value).rpartition(":")[2] or 9395)
        given = _get(_get(self.source.get("scheduler"), "service"), "monitorTargetPort")
        if given is not None and int(given) != port:
            self.out.not_carried.append((path, f"scheduler.service.monitorTargetPort {given} wins"))
            return
        self.out.set("scheduler.service.monitorTargetPort", port)
        self.out.converted.append((path, f"scheduler.service.monitorTargetPort: {port}"))

    def http_target_port(self, path: str, value: Any) -> None:
        if int(value) >= 1024:
            self.out.set(path, value)
        else:
            reason = f"{value}: hami's extender runs as non-root and listens on 8443"
            self.out.not_carried.append((path, reason))

    def extra_new_args(self, path: str, value: Any) -> None:
        args = [a for a in value or [] if not str(a).startswith("--config=")]
        self.out.set("scheduler.kubeScheduler.extraArgs", args)
        self.out.converted.append((path, f"scheduler.kubeScheduler.extraArgs: {args}"))

    def legacy_args(self, path: str, value: Any) -> None:
        self.out.left_out.append((path, "HAMi's arguments for kube-scheduler < 1.22"))

    def component_args(self, path: str, value: Any) -> None:
        kept = [a for a in value or [] if not KLOG_FLAG.match(str(a))]
        dropped = [a for a in value or [] if KLOG_FLAG.match(str(a))]
        if dropped:
            reason = f"{dropped}: klog flags; hami logs at scheduler.extender.logLevel"
            self.out.left_out.append((path, reason))
        if kept:
            self.out.set(path, kept)
            self.out.not_carried.append((path, f"{kept} passed on as they are: check --help"))

    def hook_path(self, path: str, value: Any) -> None:
        tail = "/vgpu" if path.endswith("libPath") else "/vgpu/containers"
        if str(value).rstrip("/") == self.hook.rstrip("/") + tail:
            self.out.left_out.append((path, f"{value}: what global.gpuHookPath {self.hook} gives"))
        else:
            self.out.not_carried.append((path, f"{value}: {self.moved[path]}"))

    def hami_image(self, path: str, value: Any) -> None:
        if isinstance(value, dict):
            self.out.pull_secrets(f"{path}.pullSecrets", value.get("pullSecrets"))
            if value.get("pullPolicy"):
                self.out.set("image.pullPolicy", value["pullPolicy"])
        self.out.left_out.append((path, "HAMi's image; hami's is image (projecthami/hami-py)"))

    def certgen_image(self, path: str, value: Any) -> None:
        self.out.left_out.append((path, self.moved[path]))


def migrate(hami_values: dict[str, Any], keys: dict[str, Any]) -> Migration:
    """hami's values for a HAMi values file (pure: no I/O)."""
    return Migrator(hami_values, keys).run()


def report(migration: Migration) -> str:
    lines = []
    for title, items in (
        ("converted", migration.converted),
        ("left out, hami does the same without them", migration.left_out),
        ("NOT carried over", migration.not_carried),
    ):
        if items:
            lines.append(f"{title} ({len(items)}):")
            lines += [f"  {path}: {reason}" for path, reason in items]
    return "\n".join(lines)


@app.command("migrate-values")
def migrate_values(
    hami_values: Annotated[Path, typer.Argument(help="a values file of HAMi's chart (2.10)")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="write hami's values here (default: stdout)"),
    ] = None,
    chart: Annotated[
        Path, typer.Option(help="hami's chart (its files/values-keys.yaml names the keys)")
    ] = CHART,
) -> None:
    """Convert a values file of HAMi's chart (2.10) for hami's chart; what could not be
    carried over is listed on stderr with the reason.

    Keys both charts have are copied; HAMi keys that became something else are converted;
    every other key is listed as left out (hami does the same without it) or NOT carried
    over (hami behaves differently, or the key is unknown: the nearest known key is named).
    """
    try:
        source = yamlio.load(hami_values.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        typer.echo(f"error: {hami_values}: {exc}", err=True)
        raise typer.Exit(2) from None
    if not isinstance(source, dict):
        typer.echo(f"error: {hami_values}: not a map of values", err=True)
        raise typer.Exit(2)
    migration = migrate(source, load_keys(chart))
    text = "# converted by `hami chart migrate-values` from " + hami_values.name + "\n"
    text += yaml.safe_dump(migration.values, sort_keys=False, default_flow_style=False)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
    summary = report(migration)
    if summary:
        typer.echo(summary, err=True)
