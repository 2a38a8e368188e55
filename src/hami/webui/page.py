"""Server-rendered HTML of the web UI: overview, node and pod views. Pure string building.

Every page is a layout around a ``<main>``; the script (static/webui.js) re-fetches the same URL
with ``partial=1`` and swaps the ``<main>`` in, so the page refreshes without a reload.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import cast
from urllib.parse import quote, urlencode

from hami.core.explain import Explanation
from hami.webui.chart import chart, range_links
from hami.webui.drapending import DraWhy
from hami.webui.history import Sample
from hami.webui.lists import namespace_link, node_link
from hami.webui.views import Filters

Doc = Mapping[str, object]


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _int(doc: Doc, key: str) -> int:
    return cast(int, doc[key])


def _docs(doc: Doc, key: str) -> list[Doc]:
    return cast(list[Doc], doc[key])


def _colour(key: str) -> str:
    return f"hsl({zlib.crc32(key.encode()) % 360} 60% 55%)"


def _query(filters: Filters) -> str:
    pairs = {k: v for k, v in vars_of(filters).items() if v}
    return "?" + urlencode(pairs) if pairs else ""


def vars_of(filters: Filters) -> dict[str, str]:
    return {
        "namespace": filters.namespace,
        "node": filters.node,
        "vendor": filters.vendor,
        "model": filters.model,
    }


def layout(
    title: str,
    body: str,
    filters: Filters,
    notices: Sequence[str],
    vendors: Sequence[str] = (),
    models: Sequence[str] = (),
    refresh: bool = True,
    stale: str = "",
) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} · hami</title>
<link rel="stylesheet" href="/static/webui.css">
<script src="/static/webui.js" defer></script>
</head><body>
<header><a class="brand" href="/{_query(filters)}">hami</a>{_nav(filters)}
{_filter_form(filters, vendors, models)}
{_badge(stale)}</header>
<main id="content" data-refresh-ms="1000"{"" if refresh else " data-no-refresh"}>{notices_html(notices)}{body}</main>
</body></html>"""


SCREENS = (
    ("/", "Overview"),
    ("/nodes", "Nodes"),
    ("/accelerators", "Accelerators"),
    ("/workloads", "Workloads"),
    ("/pending", "Pending"),
    ("/namespaces", "Namespaces"),
    ("/what-if", "What-if"),
)


def _nav(filters: Filters) -> str:
    """The screens; each link keeps the filters, so a filtered view stays filtered."""
    links = "".join(f'<a href="{path}{_query(filters)}">{name}</a>' for path, name in SCREENS)
    return f'<nav id="screens">{links}</nav>'


def _badge(stale: str) -> str:
    """ "live", or "stale since …" while the source shows its last good data (API outage)."""
    if stale:
        return (
            f'<span id="refresh-state" class="badge stale" data-state="stale" '
            f'title="the API server cannot be read: last good data">stale since {_e(stale)}</span>'
        )
    return '<span id="refresh-state" class="badge live" data-state="live">live</span>'


def filter_problems(problems: Sequence[str]) -> str:
    if not problems:
        return ""
    items = "".join(f"<li>{_e(p)}</li>" for p in problems)
    return f'<section id="filter-problem" class="notice" role="alert"><ul>{items}</ul></section>'


def partial(body: str, notices: Sequence[str]) -> str:
    return notices_html(notices) + body


def _filter_form(filters: Filters, vendors: Sequence[str], models: Sequence[str]) -> str:
    """Namespace and node as text, vendor as a choice of vendor names (each once), model as
    text with the models present as suggestions (matched by exact name)."""
    fields = []
    for name, value in vars_of(filters).items():
        if name == "vendor" and vendors:
            options = "".join(
                f'<option value="{_e(v)}"{" selected" if v.lower() == value.lower() else ""}>'
                f"{_e(v)}</option>"
                for v in ("", *vendors)
            )
            if value and not any(v.lower() == value.lower() for v in vendors):
                options += f'<option value="{_e(value)}" selected>{_e(value)}</option>'
            fields.append(f'<label>vendor <select name="vendor">{options}</select></label>')
            continue
        extra = ' list="models"' if name == "model" else ""
        fields.append(
            f'<label>{name} <input name="{name}" value="{_e(value)}" size="12"{extra}></label>'
        )
    datalist = "".join(f'<option value="{_e(m)}">' for m in models)
    return (
        f'<form id="filters" method="get">{"".join(fields)}'
        f'<datalist id="models">{datalist}</datalist><button>filter</button></form>'
    )


def notices_html(notices: Sequence[str]) -> str:
    if not notices:
        return ""
    items = "".join(f"<li>{_e(n)}</li>" for n in notices)
    return (
        f'<section class="notice" role="status"><strong>Notice</strong><ul>{items}</ul></section>'
    )


def bar(parts: Iterable[tuple[str, int, str]], total: int, unit: str) -> str:
    """A horizontal bar: one segment per (label, amount, colour) out of ``total``."""
    segments = []
    used = 0
    for label, amount, colour in parts:
        used += amount
        width = 100.0 * amount / total if total else 0.0
        segments.append(
            f'<span class="seg" style="width:{width:.2f}%;background:{colour}" '
            f'title="{_e(label)}: {amount} {unit}" data-pod="{_e(label)}"></span>'
        )
    return (
        f'<div class="bar" title="{used}/{total} {unit}">{"".join(segments)}</div>'
        f'<span class="num">{used}/{total} {unit}</span>'
    )


def _stat(key: str, label: str, value: object) -> str:
    return f'<div class="stat"><span class="v" data-k="{key}">{_e(value)}</span>{label}</div>'


# --- overview ----------------------------------------------------------------------------------


def overview(
    summary: Doc,
    nodes: Sequence[Doc],
    pending: Sequence[Doc],
    filters: Filters,
    trend: str = "",
) -> str:
    frag = cast(Doc, summary["fragmentation"])
    stats = "".join(
        [
            _stat("nodes", "nodes", summary["nodes"]),
            _stat("nodes_registered", "with GPUs", summary["nodes_registered"]),
            _stat("devices", "devices", summary["devices"]),
            _stat("pods_placed", "pods placed", summary["pods_placed"]),
            _stat("pods_pending", "pending", summary["pods_pending"]),
            _stat("fragmentation", "% free memory stranded", frag["fragmentation_pct"]),
        ]
    )
    memory = bar(
        [("allocated", _int(summary, "memory_allocated_mib"), "#4a7")],
        _int(summary, "memory_mib"),
        "MiB",
    )
    cores = "<br>".join(_compute_bars(summary))
    return (
        f'<h1>Cluster</h1><div class="stats">{stats}</div>'
        f'<div class="totals">memory {memory}<br>cores {cores}</div>{trend}'
        f"<h2>GPUs by vendor and model</h2>{_models_table(_docs(summary, 'by_model'))}"
        f"<h2>Pending pods</h2>{_pending_list(pending)}"
        f"<h2>Nodes</h2>{_nodes_table(nodes, filters)}"
    )


def _unit(doc: Doc) -> str:
    """The word after a compute amount: ``%`` of a card reads "cores" (100 a card)."""
    unit = str(doc.get("cores_unit", "%"))
    return "cores" if unit == "%" else unit


def _compute_bars(doc: Doc) -> list[str]:
    """One compute bar per unit of ``doc`` (a summary or a node): never one sum across units."""
    return [
        bar([("allocated", _int(c, "cores_allocated"), "#47a")], _int(c, "cores"), _unit(c))
        for c in _docs(doc, "compute")
    ] or [bar([], 0, "cores")]


def _models_table(models: Sequence[Doc]) -> str:
    rows = "".join(
        f"<tr><td>{_e(m['vendor'])}</td><td>{_e(m['model'])}</td>"
        f'<td class="r">{_e(m["devices"])}</td>'
        f"<td>{bar([('allocated', _int(m, 'memory_allocated_mib'), '#4a7')], _int(m, 'memory_mib'), 'MiB')}</td>"
        f"<td>{bar([('allocated', _int(m, 'cores_allocated'), '#47a')], _int(m, 'cores'), _unit(m))}</td></tr>"
        for m in models
    )
    head = "<tr><th>vendor</th><th>model</th><th>devices</th><th>memory</th><th>cores</th></tr>"
    return f'<table id="models">{head}{rows}</table>' if models else "<p>No GPUs registered.</p>"


def _pending_list(pods: Sequence[Doc]) -> str:
    if not pods:
        return '<p class="muted">none</p>'
    items = "".join(
        f'<li><a href="/pods/{quote(str(p["namespace"]))}/{quote(str(p["name"]))}">'
        f"{_e(p['namespace'])}/{_e(p['name'])}</a></li>"
        for p in pods
    )
    return f'<ul id="pending">{items}</ul>'


def _nodes_table(nodes: Sequence[Doc], filters: Filters) -> str:
    rows = []
    for n in nodes:
        problem = n["problem"] or ("" if n["registered"] else "no device registration")
        rows.append(
            f'<tr><td><a href="/nodes/{quote(str(n["name"]))}{_query(filters)}">{_e(n["name"])}</a></td>'
            f'<td class="r">{len(_docs(n, "devices"))}</td>'
            f"<td>{bar([('allocated', _int(n, 'memory_allocated_mib'), '#4a7')], _int(n, 'memory_mib'), 'MiB')}</td>"
            f"<td>{'<br>'.join(_compute_bars(n))}</td>"
            f'<td class="warn">{_e(problem)}</td></tr>'
        )
    head = "<tr><th>node</th><th>devices</th><th>memory</th><th>cores</th><th></th></tr>"
    return f'<table id="nodes">{head}{"".join(rows)}</table>'


# --- node view ---------------------------------------------------------------------------------


def node_page(
    node: Doc, history: Mapping[str, list[Sample]], range_name: str = "1h", now: float = 0.0
) -> str:
    devices = _docs(node, "devices")
    problem = f'<p class="warn">{_e(node["problem"])}</p>' if node["problem"] else ""
    if not node["registered"] and not node["problem"]:
        problem = '<p class="warn">This node has no device registration.</p>'
    cards = "".join(
        _device_card(
            d, chart(history.get(str(d["uuid"]), []), range_name, f"{d['label']} history", now)
        )
        for d in devices
    )
    ranges = range_links(range_name)
    return f'<h1>Node {_e(node["name"])}</h1>{problem}{ranges}<div id="devices">{cards}</div>'


def _device_card(device: Doc, trend: str) -> str:
    pods = _docs(device, "pods")
    mem = bar(
        (
            (f"{p['pod']}/{p['container']}", _int(p, "memory_mib"), _colour(str(p["pod"])))
            for p in pods
        ),
        _int(device, "memory_mib"),
        "MiB",
    )
    cores = bar(
        ((f"{p['pod']}/{p['container']}", _int(p, "cores"), _colour(str(p["pod"]))) for p in pods),
        _int(device, "cores"),
        _unit(device),
    )
    flags = [] if device["health"] else ["unhealthy"]
    flags += ["cordoned"] if device["cordoned"] else []
    legend = "".join(
        f'<li><span class="sw" style="background:{_colour(str(p["pod"]))}"></span>'
        f'<a href="/pods/{_e(p["pod"])}">{_e(p["pod"])}</a> {_e(p["container"])}: '
        f"{_e(p['memory_mib'])} MiB, {_e(p['cores'])} {_e(_unit(device))}</li>"
        for p in pods
    )
    return (
        f'<section class="device" data-uuid="{_e(device["uuid"])}">'
        f'<h3><a href="/accelerators/{quote(str(device["uuid"]), safe="")}">{_e(device["label"])}</a>'
        f" · {_e(device['model'])} <small>{_e(device['uuid'])}"
        f" · {_e(device['mode'] or 'default')} · slots {_e(device['slots_used'])}/{_e(device['slots'])}"
        f'</small> <span class="warn">{" ".join(flags)}</span></h3>'
        f'<div class="row"><span class="lbl">memory</span>{mem}</div>'
        f'<div class="row"><span class="lbl">cores</span>{cores}</div>'
        f"{_mig_row(device.get('mig'))}"
        f'<ul class="legend">{legend}</ul>{trend}</section>'
    )


def _mig_row(value: object) -> str:
    """A MIG GPU as its slices: each instance spans its placement, labelled with profile and
    pod (dashed while only reserved; the MIG UUID in its title once realised); free slices
    are grey. Empty for a device that is not in MIG mode."""
    if not isinstance(value, Mapping):
        return ""
    return (
        f'<div class="row"><span class="lbl">MIG</span>{mig_slices(value)}'
        f'<span class="num">{_e(value["slices_used"])}/{_e(value["slices"])} slices</span></div>'
    )


def mig_slices(gpu: Doc) -> str:
    total = _int(gpu, "slices")
    instances = _docs(gpu, "instances")
    taken: set[int] = set()
    cells: list[tuple[int, str]] = []  # by start slice: an overlap (hand edit) wraps a row
    for i in instances:
        start, size = _int(i, "start"), _int(i, "size")
        taken.update(range(start, start + size))
        realised = i["state"] == "realised"
        identity = (
            f"{i['mig_uuid']} (GI {i['gpu_instance_id']}, CI {i['compute_instance_id']})"
            if realised
            else "reserved, not realised yet"
        )
        title = f"{i['profile']} slices {start}-{start + size - 1}: {i['pod']} [{i['container']}] {identity}"
        cells.append(
            (
                start,
                f'<span class="slice {"realised" if realised else "reserved"}" '
                f'style="grid-column:{start + 1} / span {size};background:{_colour(str(i["pod"]))}" '
                f'data-profile="{_e(i["profile"])}" data-pod="{_e(i["pod"])}" data-start="{start}" '
                f'data-size="{size}" data-mig-uuid="{_e(i["mig_uuid"] or "")}" title="{_e(title)}">'
                f'<b>{_e(i["profile"])}</b><a href="/pods/{_e(i["pod"])}">{_e(i["pod"])}</a></span>',
            )
        )
    cells += [
        (
            s,
            f'<span class="slice free" style="grid-column:{s + 1} / span 1" data-start="{s}" '
            f'title="slice {s}: free"></span>',
        )
        for s in range(total)
        if s not in taken
    ]
    cells.sort(key=lambda cell: cell[0])
    return (
        f'<div class="mig" data-slices="{total}" '
        f'style="grid-template-columns:repeat({total},1fr)">{"".join(c for _, c in cells)}</div>'
    )


# --- pod view ----------------------------------------------------------------------------------


def pod_page(
    pod: Doc, explanation: Explanation | DraWhy | None, utilisation: Mapping[str, float]
) -> str:
    head = (
        f"<h1>Pod {_e(pod['namespace'])}/{_e(pod['name'])}</h1>"
        f'<p>phase <b data-k="phase">{_e(pod["phase"])}</b>'
        f"{' on node ' + node_link(pod['node']) if pod['node'] else ''}"
        f" · namespace {namespace_link(pod['namespace'])}"
        f"{' · started <time>' + _e(pod['started']) + '</time>' if pod.get('started') else ''}</p>"
    )
    problem = f'<p class="warn">{_e(pod["problem"])}</p>' if pod["problem"] else ""
    return (
        head
        + problem
        + _limits_table(pod)
        + _slices_table(pod, utilisation)
        + _mig_table(pod)
        + _why(explanation)
    )


def _mig_table(pod: Doc) -> str:
    instances = _docs(pod, "mig") if pod.get("mig") else []
    if not instances:
        return ""
    rows = "".join(
        f"<tr><td>{_e(i['container'])}</td><td>{_e(i['gpu_uuid'])}</td><td>{_e(i['profile'])}</td>"
        f"<td class=r>{_e(i['start'])}-{_int(i, 'start') + _int(i, 'size') - 1}</td>"
        f"<td>{_e(i['mig_uuid'] or 'reserved, not realised yet')}</td>"
        f"<td class=r>{_e('' if i['gpu_instance_id'] is None else i['gpu_instance_id'])}</td>"
        f"<td class=r>{_e('' if i['compute_instance_id'] is None else i['compute_instance_id'])}</td></tr>"
        for i in instances
    )
    head = (
        "<tr><th>container</th><th>GPU</th><th>profile</th><th>slices</th><th>MIG device</th>"
        "<th>GI</th><th>CI</th></tr>"
    )
    return f'<h2>MIG instances</h2><table id="mig">{head}{rows}</table>'


def _limits_table(pod: Doc) -> str:
    rows = "".join(
        f"<tr><td>{_e(r['container'])}</td><td>{_e(r['vendor'])}</td><td class=r>{_e(r['devices'])}</td>"
        f"<td class=r>{_e(r['memory_mib'] or str(r['memory_pct']) + '%')}</td><td class=r>{_e(r['cores'])}</td></tr>"
        for r in _docs(pod, "limits")
    )
    head = "<tr><th>container</th><th>vendor</th><th>devices</th><th>memory MiB</th><th>cores</th></tr>"
    return f'<h2>Limits</h2><table id="limits">{head}{rows}</table>'


def _slices_table(pod: Doc, utilisation: Mapping[str, float]) -> str:
    slices = _docs(pod, "slices")
    if not slices:
        return ""
    rows = "".join(
        f'<tr><td>{_e(s["container"])}</td><td><a href="/accelerators/{quote(str(s["uuid"]), safe="")}">{_e(s["uuid"])}</a></td><td class=r>{_e(s["memory_mib"])}</td>'
        f"<td class=r>{_e(s['cores'])} {_e(_unit(s))}</td><td class=r>{_util(utilisation.get(str(s['uuid'])))}</td></tr>"
        for s in slices
    )
    head = (
        "<tr><th>container</th><th>device</th><th>memory MiB</th><th>compute</th>"
        "<th>device use</th></tr>"
    )
    return f'<h2>Slices</h2><table id="slices">{head}{rows}</table>'


def _util(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}%"


def _why(explanation: Explanation | DraWhy | None) -> str:
    if explanation is None:
        return ""
    if isinstance(explanation, DraWhy):  # `hami explain`'s lines for a DRA pod
        return (
            f'<section id="explain"><h2>Why it is pending</h2>'
            f'<p data-cause="{_e(explanation.cause)}">{_e(explanation.summary)}</p>'
            f"<p>→ {_e(explanation.hint)}</p><pre>{_e(chr(10).join(explanation.lines))}</pre>"
            "</section>"
        )
    groups = "".join(
        f"<li><b>{g.count} × {_e(g.reason)}</b> <small>({_e(', '.join(g.nodes[:8]))}"
        f"{' …' if g.count > 8 else ''})</small><br>→ {_e(g.hint)}</li>"
        for g in explanation.groups
    )
    return (
        f'<section id="explain"><h2>Why it is pending</h2><p>{_e(explanation.summary())}</p>'
        f"<ul>{groups}</ul></section>"
    )


def error_page(status: int, message: str) -> str:
    return layout(str(status), f'<h1>{status}</h1><p class="warn">{_e(message)}</p>', Filters(), [])


# --- accelerator view --------------------------------------------------------------------------


def device_page(
    device: Doc, history: Sequence[Sample], range_name: str = "1h", now: float = 0.0
) -> str:
    """One accelerator: its node, vendor, sharing count vs max, the pods on it, its history."""
    facts = (
        f'<p>node <a href="/nodes/{quote(str(device["node"]))}">{_e(device["node"])}</a>'
        f" · vendor {_e(device['vendor_name'])} · model {_e(device['model'])}"
        f" · NUMA {_e(device['numa'])}"
        f' · shared by <b data-k="slots_used">{_e(device["slots_used"])}</b>'
        f" of at most {_e(device['slots'])}</p>"
    )
    return (
        f"<h1>{_e(device['label'])} on {_e(device['node'])}</h1>{facts}"
        f"{range_links(range_name)}"
        f'<div id="devices">{_device_card(device, chart(history, range_name, "history", now))}</div>'
    )


# --- what-if -----------------------------------------------------------------------------------

SAMPLE_SPEC = """apiVersion: v1
kind: Pod
metadata:
  name: try-me
  namespace: default
spec:
  containers:
    - name: main
      image: busybox
      resources:
        limits:
          nvidia.com/gpu: 1
          nvidia.com/gpumem: 8000
          nvidia.com/gpucores: 30
"""


def what_if_page(spec: str, result: Mapping[str, object] | None, error: str) -> str:
    """The form, and below it where the pod would land (its devices) or why it would not."""
    form = (
        '<form id="what-if" method="post" action="/what-if">'
        '<label for="spec">Pod spec (YAML or JSON): where would it land now?</label><br>'
        f'<textarea id="spec" name="spec" rows="18" cols="80" spellcheck="false">{_e(spec)}</textarea>'
        "<br><button>try it</button></form>"
    )
    out = ""
    if error:
        out = f'<section id="whatif-error" class="notice" role="alert"><strong>Cannot try this spec</strong><p>{_e(error)}</p></section>'
    elif result is not None:
        why = cast(Mapping[str, object], result["explain"])
        if result["fits"]:
            rows = "".join(
                f"<tr><td>{_e(d['container'])}</td><td>{_e(d['vendor'])}</td>"
                f'<td><a href="/accelerators/{quote(str(d["uuid"]), safe="")}">{_e(d["uuid"])}</a></td>'
                f"<td class=r>{_e(d['memory_mib'])}</td><td class=r>{_e(d['cores'])}</td></tr>"
                for d in _docs(result, "devices")
            )
            out = (
                f'<section id="whatif-result" data-fits="yes"><h2>{_e(result["pod"])} would land on '
                f'<a href="/nodes/{quote(str(result["node"]))}" data-k="whatif_node">{_e(result["node"])}</a></h2>'
                "<table><tr><th>container</th><th>vendor</th><th>device</th><th>memory MiB</th>"
                f"<th>cores</th></tr>{rows}</table></section>"
            )
        else:
            groups = "".join(
                f"<li><b>{_e(g['count'])} × {_e(g['reason'])}</b> <small>"
                f"({_e(', '.join(cast(list[str], g['nodes'])[:8]))})</small><br>→ {_e(g['hint'])}</li>"
                for g in _docs(why, "groups")
            )
            out = (
                f'<section id="whatif-result" data-fits="no"><h2>It would not fit</h2>'
                f"<p>{_e(why['summary'])}</p><ul>{groups}</ul></section>"
            )
    note = (
        '<p class="muted">Decided by the decision core of <code>hami sim</code> on the view this page '
        "shows; nothing is created or reserved.</p>"
    )
    return f"<h1>What-if</h1>{note}{form}{out}"
