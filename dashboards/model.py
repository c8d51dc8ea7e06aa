"""Builders for Grafana dashboard JSON (schema of Grafana 11.6), keeping beside each query what tests need.

A :class:`Query` holds the raw InfluxQL, the columns it must return and whether the demo's data alone
fills it; :class:`Board` lays panels out on Grafana's 24-column grid left to right, row by row, gives
them ids, and renders the dashboard JSON (the test-only attributes stay in Python).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: Every panel reads the datasource the dashboard's ``ds`` variable names (1.x or 2.x, see provisioning).
DATASOURCE = {"type": "influxdb", "uid": "${ds}"}
DS_VARIABLE = "ds"
SCHEMA_VERSION = 39  # the dashboard schema Grafana 11.x writes
GRID_WIDTH = 24

Format = Literal["time_series", "table"]


@dataclass(frozen=True, slots=True)
class Query:
    """One panel query: raw InfluxQL with Grafana macros and variables."""

    text: str
    columns: tuple[str, ...]  # columns (fields and grouped tags) the result must have
    fmt: Format = "time_series"
    demo: bool = True  # the demo's own data fills it (else only what a test adds: history a short demo lacks)
    hide: bool = False

    def target(self, ref: str) -> dict[str, Any]:
        return {
            "refId": ref,
            "datasource": DATASOURCE,
            "query": self.text,
            "rawQuery": True,
            "resultFormat": self.fmt,
            "hide": self.hide,
        }


@dataclass
class Panel:
    """A panel: its type, title, queries (refIds A, B, … in order) and options."""

    type: str
    title: str
    queries: list[Query]
    w: int = 8
    h: int = 8
    unit: str | None = None
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    transformations: list[dict[str, Any]] = field(default_factory=list)
    max_data_points: int = 500
    interval: str | None = None  # minimum interval
    links: list[dict[str, Any]] = field(default_factory=list)

    def refs(self) -> dict[str, Query]:
        return {chr(ord("A") + i): q for i, q in enumerate(self.queries)}

    def render(self, pid: int, x: int, y: int) -> dict[str, Any]:
        defaults: dict[str, Any] = {**self.defaults}
        if self.unit:
            defaults["unit"] = self.unit
        if self.links:
            defaults["links"] = self.links
        out: dict[str, Any] = {
            "id": pid,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "gridPos": {"x": x, "y": y, "w": self.w, "h": self.h},
            "datasource": DATASOURCE,
            "maxDataPoints": self.max_data_points,
            "targets": [q.target(ref) for ref, q in self.refs().items()],
            "fieldConfig": {"defaults": defaults, "overrides": self.overrides},
            "options": self.options,
        }
        if self.interval:
            out["interval"] = self.interval
        if self.transformations:
            out["transformations"] = self.transformations
        return out


@dataclass(frozen=True, slots=True)
class Var:
    """A query variable over InfluxDB tag values (``SHOW TAG VALUES …``), possibly chained to others."""

    name: str
    label: str
    query: str
    multi: bool = True
    include_all: bool = True

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "type": "query",
            "datasource": DATASOURCE,
            "query": self.query,
            "refresh": 2,  # on time range change: new stalls and scales appear without a reload
            "multi": self.multi,
            "includeAll": self.include_all,
            "sort": 1,
            "options": [],
        }
        if self.include_all:  # else Grafana selects the first value
            out["current"] = {"text": ["All"], "value": ["$__all"]}
        return out


def datasource_variable(default_uid: str) -> dict[str, Any]:
    """The ``ds`` variable: which provisioned InfluxDB the dashboard reads (the 1.x one by default)."""
    return {
        "name": DS_VARIABLE,
        "label": "数据源 Datasource",
        "type": "datasource",
        "query": "influxdb",
        "regex": "/Zhijian/",
        "current": {"text": default_uid, "value": default_uid},
        "hide": 0,
        "options": [],
    }


def dashboard_link(title: str, uid: str, *, keep_vars: bool = True) -> dict[str, Any]:
    """A link to another dashboard of ours, carrying the time range and the variables it shares."""
    return {
        "title": title,
        "tooltip": title,
        "type": "link",
        "url": f"/d/{uid}",
        "keepTime": True,
        "includeVars": keep_vars,
        "targetBlank": False,
        "icon": "dashboard",
        "asDropdown": False,
        "tags": [],
    }


def data_link(title: str, uid: str, params: str) -> dict[str, Any]:
    """A link from a value to a drill-down dashboard (``params``: ``var-x=${__data.fields.x}`` …)."""
    return {"title": title, "url": f"/d/{uid}?${{__url_time_range}}&{params}"}


@dataclass
class Board:
    """A dashboard: panels placed row by row on the 24-column grid, in the order they are added."""

    uid: str
    title: str
    description: str
    variables: list[Var] = field(default_factory=list)
    panels: list[Panel] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    time_from: str = "now-6h"
    tags: tuple[str, ...] = ("zhijian",)

    def add(self, *panels: Panel) -> Board:
        self.panels.extend(panels)
        return self

    def layout(self) -> list[tuple[Panel, int, int]]:
        """(panel, x, y): left to right; a panel that does not fit starts a new row below the tallest."""
        placed: list[tuple[Panel, int, int]] = []
        x = y = row_h = 0
        for p in self.panels:
            if x + p.w > GRID_WIDTH:
                x, y, row_h = 0, y + row_h, 0
            placed.append((p, x, y))
            x += p.w
            row_h = max(row_h, p.h)
        return placed

    def render(self, default_ds_uid: str) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "timezone": "browser",
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "refresh": "30s",
            "time": {"from": self.time_from, "to": "now"},
            "links": self.links,
            "templating": {"list": [datasource_variable(default_ds_uid), *(v.render() for v in self.variables)]},
            "panels": [p.render(i + 1, x, y) for i, (p, x, y) in enumerate(self.layout())],
        }


def stat(title: str, query: Query, *, unit: str | None = None, w: int = 4, h: int = 4, **kw: Any) -> Panel:
    options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value"}
    return Panel("stat", title, [query], w=w, h=h, unit=unit, options=options, **kw)


def timeseries(title: str, *queries: Query, unit: str | None = None, w: int = 12, h: int = 8, **kw: Any) -> Panel:
    options = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    return Panel("timeseries", title, list(queries), w=w, h=h, unit=unit, options=options, **kw)


def table(title: str, *queries: Query, w: int = 12, h: int = 8, **kw: Any) -> Panel:
    options = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
    return Panel("table", title, list(queries), w=w, h=h, options=options, **kw)


def barchart(title: str, query: Query, *, unit: str | None = None, w: int = 12, h: int = 8, **kw: Any) -> Panel:
    options = {"orientation": "horizontal", "showValue": "auto", "legend": {"displayMode": "list"}}
    return Panel("barchart", title, [query], w=w, h=h, unit=unit, options=options, **kw)


def join_on(field_name: str) -> dict[str, Any]:
    """Grafana's "join by field" transformation: frames of several queries side by side on one column."""
    return {"id": "joinByField", "options": {"byField": field_name, "mode": "outer"}}


def sort_by(field_name: str, *, desc: bool = True) -> dict[str, Any]:
    return {"id": "sortBy", "options": {"sort": [{"field": field_name, "desc": desc}]}}


def first_rows(n: int) -> dict[str, Any]:
    """Grafana's "limit" transformation: the first ``n`` rows (after sorting: the top ``n``)."""
    return {"id": "limit", "options": {"limitField": n}}


def hide_fields(*names: str) -> dict[str, Any]:
    return {"id": "organize", "options": {"excludeByName": dict.fromkeys(names, True)}}


def unit_override(field_name: str, unit: str) -> dict[str, Any]:
    return {"matcher": {"id": "byName", "options": field_name}, "properties": [{"id": "unit", "value": unit}]}
