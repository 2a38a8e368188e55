"""The list screens: nodes, accelerators, workloads, Pending, namespaces and quotas.

Every list is a server-side searchable, sortable table: ``q`` (search, every column's text),
``sort`` (a column key) and ``dir`` (``asc``/``desc``) are query parameters, so a list as seen is
a URL that can be shared, and the page's refresh (``partial=1``) keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import cast
from urllib.parse import quote, urlencode

Doc = Mapping[str, object]
Cell = tuple[object, str]  # (sort value, HTML)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    numeric: bool = False


@dataclass(frozen=True, slots=True)
class ListState:
    """Search and sort of one list, and the page's other query parameters (kept in links)."""

    q: str = ""
    sort: str = ""
    dir: str = "asc"
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, query: Mapping[str, str]) -> ListState:
        kept = tuple(
            (k, v) for k, v in query.items() if k not in ("q", "sort", "dir", "partial") and v
        )
        direction = "desc" if query.get("dir") == "desc" else "asc"
        return cls(query.get("q", "").strip(), query.get("sort", ""), direction, kept)

    def href(self, **changes: str) -> str:
        pairs = dict(self.params)
        pairs.update({"q": self.q, "sort": self.sort, "dir": self.dir})
        pairs.update(changes)
        pairs = {k: v for k, v in pairs.items() if v and not (k == "dir" and v == "asc")}
        return "?" + urlencode(pairs) if pairs else "?"


def node_link(name: object) -> str:
    return f'<a href="/nodes/{quote(str(name))}">{_e(name)}</a>'


def pod_link(namespace: object, name: object) -> str:
    return (
        f'<a href="/pods/{quote(str(namespace))}/{quote(str(name))}">{_e(namespace)}/{_e(name)}</a>'
    )


def pod_key_link(key: object) -> str:
    namespace, _, name = str(key).partition("/")
    return pod_link(namespace, name)


def device_link(uuid: object, label: object = None) -> str:
    return f'<a href="/accelerators/{quote(str(uuid), safe="")}">{_e(label or uuid)}</a>'


def namespace_link(namespace: object) -> str:
    return f'<a href="/namespaces?{urlencode({"q": str(namespace)})}">{_e(namespace)}</a>'


def table(
    table_id: str, columns: Sequence[Column], rows: Sequence[Mapping[str, Cell]], state: ListState
) -> str:
    """A searchable, sortable table (server-side: the URL says what is shown)."""
    wanted = state.q.lower()
    shown = [r for r in rows if not wanted or any(wanted in str(c[0]).lower() for c in r.values())]
    keys = {c.key for c in columns}
    if state.sort in keys:
        numeric = next(c.numeric for c in columns if c.key == state.sort)

        def order(row: Mapping[str, Cell]) -> tuple[int, object]:
            value = row[state.sort][0]
            if numeric:
                return (0, float(cast(float, value)) if value is not None else float("-inf"))
            return (0, str(value).lower())

        shown.sort(key=order, reverse=state.dir == "desc")
    head = "".join(_th(c, state) for c in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td{" class=r" if c.numeric else ""} data-col="{c.key}">{r[c.key][1]}</td>'
            for c in columns
        )
        + "</tr>"
        for r in shown
    )
    hidden = "".join(
        f'<input type="hidden" name="{_e(k)}" value="{_e(v)}">'
        for k, v in (*state.params, ("sort", state.sort), ("dir", state.dir))
        if v and not (k == "dir" and v == "asc")
    )
    search = (
        f'<form class="search" method="get" data-merge>{hidden}'
        f'<input type="search" name="q" value="{_e(state.q)}" placeholder="search" '
        f'aria-label="search {table_id}"> <span class="muted" data-k="{table_id}_shown">'
        f"{len(shown)}</span><span class=muted> of {len(rows)}</span></form>"
    )
    return (
        f'{search}<table id="{table_id}" class="list" data-rows="{len(shown)}">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _th(column: Column, state: ListState) -> str:
    active = state.sort == column.key
    direction = "desc" if active and state.dir == "asc" else "asc"
    arrow = (" ▲" if state.dir == "asc" else " ▼") if active else ""
    aria = (' aria-sort="ascending"' if state.dir == "asc" else ' aria-sort="descending"') * active
    return (
        f'<th{aria}><a class="sort" data-sort="{column.key}" '
        f'href="{_e(state.href(sort=column.key, dir=direction))}">{_e(column.title)}{arrow}</a></th>'
    )


def used(doc: Doc, used_key: str, total_key: str, unit: str) -> Cell:
    """A 'used/total unit' cell, sorted by the used share."""
    part, whole = cast(int, doc[used_key]), cast(int, doc[total_key])
    pct = 100.0 * part / whole if whole else 0.0
    return (
        pct,
        f'<span class="meter"><span style="width:{min(pct, 100):.1f}%"></span></span>'
        f'<span class="num">{part}/{whole} {unit}</span>',
    )


# --- screens -----------------------------------------------------------------------------------


NODE_COLUMNS = (
    Column("name", "node"),
    Column("vendors", "vendors"),
    Column("models", "models"),
    Column("devices", "devices", True),
    Column("memory", "memory", True),
    Column("cores", "cores", True),
    Column("pods", "pods", True),
    Column("status", "status"),
)


def nodes_list(nodes: Sequence[Doc], state: ListState) -> str:
    rows = []
    for n in nodes:
        problem = str(n["problem"] or ("" if n["registered"] else "no device registration"))
        status = problem or ("healthy" if n["healthy"] else "unhealthy device")
        models = cast(list[str], n["models"])
        vendors = cast(list[str], n["vendors"])
        devices = cast(list[Doc], n["devices"])
        rows.append(
            {
                "name": (n["name"], node_link(n["name"])),
                "vendors": (" ".join(vendors), _e(", ".join(vendors))),
                "models": (" ".join(models), _e(", ".join(models))),
                "devices": (len(devices), str(len(devices))),
                "memory": used(n, "memory_allocated_mib", "memory_mib", "MiB"),
                "cores": used(n, "cores_allocated", "cores", "cores"),
                "pods": (n["pods"], _e(n["pods"])),
                "status": (
                    status,
                    f'<span class="{"warn" if problem else ""}">{_e(status)}</span>',
                ),
            }
        )
    return f"<h1>Nodes</h1>{table('node-list', NODE_COLUMNS, rows, state)}"


DEVICE_COLUMNS = (
    Column("label", "device"),
    Column("node", "node"),
    Column("vendor", "vendor"),
    Column("model", "model"),
    Column("mode", "mode"),
    Column("memory", "memory", True),
    Column("cores", "cores", True),
    Column("sharing", "shared by", True),
    Column("health", "health"),
)


def devices_list(devices: Sequence[Doc], state: ListState) -> str:
    rows = []
    for d in devices:
        health = "healthy" if d["health"] else "unhealthy"
        health += ", cordoned" if d["cordoned"] else ""
        rows.append(
            {
                "label": (f"{d['label']} {d['uuid']}", device_link(d["uuid"], d["label"])),
                "node": (d["node"], node_link(d["node"])),
                "vendor": (d["vendor_name"], _e(d["vendor_name"])),
                "model": (d["model"], _e(d["model"])),
                "mode": (d["mode"] or "default", _e(d["mode"] or "default")),
                "memory": used(d, "memory_allocated_mib", "memory_mib", "MiB"),
                "cores": used(d, "cores_allocated", "cores", "cores"),
                "sharing": (d["slots_used"], f"{_e(d['slots_used'])}/{_e(d['slots'])}"),
                "health": (
                    health,
                    f'<span class="{"" if health == "healthy" else "warn"}">{health}</span>',
                ),
            }
        )
    return f"<h1>Accelerators</h1>{table('device-list', DEVICE_COLUMNS, rows, state)}"


WORKLOAD_COLUMNS = (
    Column("name", "workload"),
    Column("namespace", "namespace"),
    Column("status", "status"),
    Column("node", "node"),
    Column("memory", "memory MiB", True),
    Column("cores", "cores", True),
    Column("cards", "cards", True),
    Column("started", "start time"),
)


def workloads_list(pods: Sequence[Doc], state: ListState) -> str:
    rows = [
        {
            "name": (p["name"], pod_link(p["namespace"], p["name"])),
            "namespace": (p["namespace"], namespace_link(p["namespace"])),
            "status": (p["phase"], _e(p["phase"])),
            "node": (p["node"] or "", node_link(p["node"]) if p["node"] else ""),
            "memory": (p["memory_mib"], _e(p["memory_mib"])),
            "cores": (p["cores"], _e(p["cores"])),
            "cards": (p["cards"], _e(p["cards"])),
            "started": (p["started"], f"<time>{_e(p['started'])}</time>"),
        }
        for p in pods
    ]
    return f"<h1>Workloads</h1>{table('workload-list', WORKLOAD_COLUMNS, rows, state)}"


PENDING_COLUMNS = (
    Column("pod", "pod"),
    Column("summary", "explain"),
    Column("started", "since"),
)


def pending_page(groups: Sequence[Doc], state: ListState) -> str:
    if not groups:
        return '<h1>Pending</h1><p class="muted" id="pending-none">No GPU pod is Pending.</p>'
    total = sum(len(cast(list[Doc], g["pods"])) for g in groups)
    parts = [f'<h1>Pending</h1><p><b data-k="pending_total">{total}</b> GPU pods Pending.</p>']
    for i, g in enumerate(groups):
        pods = cast(list[Doc], g["pods"])
        hints = sorted({str(p["hint"]) for p in pods})
        rows = [
            {
                "pod": (f"{p['namespace']}/{p['name']}", pod_link(p["namespace"], p["name"])),
                "summary": (p["summary"], _e(p["summary"])),
                "started": (p["started"], _e(p["started"])),
            }
            for p in pods
        ]
        parts.append(
            f'<section class="cause" data-cause="{_e(g["cause"])}">'
            f'<h2>{_e(g["cause"])} <small data-k="cause_{i}">{len(pods)}</small></h2>'
            f'<ul class="hints">{"".join(f"<li>→ {_e(h)}</li>" for h in hints[:5])}</ul>'
            f"{table(f'pending-{i}', PENDING_COLUMNS, rows, state)}</section>"
        )
    return "".join(parts)


def namespaces_page(namespaces: Sequence[Doc], state: ListState, quotas_known: bool) -> str:
    columns = (
        Column("namespace", "namespace"),
        Column("placed", "pods placed", True),
        Column("pending", "pending", True),
        Column("usage", "allocated by vendor"),
        Column("quota", "hami quota (used/limit)", True),
    )
    rows = []
    for n in namespaces:
        vendors = cast(list[Doc], n["vendors"])
        quotas = cast(list[Doc], n["quotas"])
        usage = "<br>".join(
            f"{_e(v['vendor'])}: {_e(v['memory_allocated_mib'])} MiB, {_e(v['cores_allocated'])} cores"
            for v in vendors
        )
        quota_html = "<br>".join(
            f'<span class="{"warn" if cast(float, q["pct"]) >= 90 else ""}" '
            f'data-resource="{_e(q["resource"])}">{_e(q["resource"])}: '
            f"{_e(q['used'])}/{_e(q['limit'])} ({_e(q['pct'])}%)</span>"
            for q in quotas
        )
        top = max((cast(float, q["pct"]) for q in quotas), default=-1.0)
        ns = n["namespace"]
        rows.append(
            {
                "namespace": (ns, namespace_link(ns)),
                "placed": (
                    n["pods_placed"],
                    f'<a href="/workloads?{urlencode({"namespace": str(ns)})}">{_e(n["pods_placed"])}</a>',
                ),
                "pending": (
                    n["pods_pending"],
                    f'<a href="/pending?{urlencode({"namespace": str(ns)})}">{_e(n["pods_pending"])}</a>',
                ),
                "usage": (" ".join(str(v["vendor"]) for v in vendors), usage),
                "quota": (top, quota_html or '<span class="muted">none</span>'),
            }
        )
    note = (
        ""
        if quotas_known
        else '<p class="muted">ResourceQuotas are not known to this source: quotas not shown.</p>'
    )
    return f"<h1>Namespaces and quotas</h1>{note}{table('namespace-list', columns, rows, state)}"


Render = Callable[[Sequence[Doc], ListState], str]
