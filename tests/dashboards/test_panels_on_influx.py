"""Every panel query, expanded as Grafana 11.6 expands it, runs on the session's influxd holding the demo's
data (the demo's own code path: registry, broker, agents over ptys, the ingest): no error, the expected
columns, rows where the demo has data. Dashboard variables are resolved by running their own queries, with
All selected and with one value, as a supervisor would pick them. Alert rule queries run as Grafana's
backend expands them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloud_ingest import InfluxClient
from dashboards import Expansion, Variable, boards
from dashboards.alerting import ALERT_INTERVAL_MS, rules
from dashboards.expand import Interval, backend_macros, seconds_to_hms
from dashboards.model import Board, Query
from dashboards.series import SERIES
from tests.support.dashboard_demo_data import H, make_plus, run_demo_into
from zhijian_cli.servers import InfluxServer

pytestmark = pytest.mark.integration


@dataclass
class Loaded:
    demo: InfluxClient
    plus: InfluxClient
    now_ms: int
    printed: str
    data_dir: Path


@pytest.fixture(scope="module")
def loaded(influxd: InfluxServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    data_dir = tmp_path_factory.mktemp("dash-demo") / "demo"
    stored, printed = run_demo_into(influxd.url, data_dir)
    assert stored > 20, printed
    demo, plus, now_ms = make_plus(influxd.url)
    yield Loaded(demo, plus, now_ms, printed, data_dir)
    for client in (demo, plus):
        client.query(f'DROP DATABASE "{client.database}"', method="POST")
        client.close()


def _columns(series: list[dict[str, object]]) -> set[str]:
    cols: set[str] = set()
    for s in series:
        cols |= set(s["columns"])  # type: ignore[arg-type]
        cols |= set(s.get("tags") or {})  # type: ignore[arg-type]
    return cols


def _resolve(board: Board, client: InfluxClient, window: tuple[int, int], *, all_values: bool) -> dict[str, Variable]:
    """Each variable's options from its own query (chained variables see the ones before), then All or the
    first option."""
    resolved: dict[str, Variable] = {}
    for var in board.variables:
        text = Expansion(from_ms=window[0], to_ms=window[1], variables=resolved).expand(var.query)
        values = sorted(str(v["value"]) for v in client.rows(text))
        assert values, f"{board.uid}: variable {var.name} has no options ({text})"
        if var.multi and all_values:
            resolved[var.name] = Variable.many(var.name, values)
        elif var.multi:
            resolved[var.name] = Variable.many(var.name, values[:1])
        else:
            resolved[var.name] = Variable.single(var.name, values[0])
    return resolved


def _panel_queries() -> list[tuple[str, str, str, Query]]:
    return [(b.uid, p.title, ref, q) for b in boards() for p in b.panels for ref, q in p.refs().items()]


def _run(loaded: Loaded, client: InfluxClient, *, all_values: bool) -> list[tuple[str, Query, list[dict[str, object]]]]:
    window = (loaded.now_ms - 6 * H, loaded.now_ms + 60_000)
    out = []
    for board in boards():
        variables = _resolve(board, client, window, all_values=all_values)
        for panel in board.panels:
            exp = Expansion(
                from_ms=window[0],
                to_ms=window[1],
                max_data_points=panel.max_data_points,
                min_interval=panel.interval,
                variables=variables,
            )
            for ref, query in panel.refs().items():
                text = exp.expand(query.text)
                assert "$" not in text.replace("$/", "").replace("^(", ""), text  # nothing left unexpanded
                out.append((f"{board.uid} / {panel.title} / {ref}: {text}", query, client.query(text)))
    return out


@pytest.mark.parametrize("all_values", [True, False], ids=["all", "one-value"])
def test_every_panel_query_runs_with_its_columns_and_data(loaded: Loaded, all_values: bool) -> None:
    results = _run(loaded, loaded.plus, all_values=all_values)
    assert len(results) == len(_panel_queries()) >= 55
    for where, query, series in results:
        assert series, f"no rows: {where}"
        missing = set(query.columns) - _columns(series)
        assert not missing, f"missing columns {sorted(missing)}: {where}"


def test_panels_the_demo_fills_have_rows_from_the_demo_alone(loaded: Loaded) -> None:
    results = _run(loaded, loaded.demo, all_values=True)
    demo_filled = [(w, s) for w, q, s in results if q.demo]
    assert len(demo_filled) >= 25
    empty = [w for w, s in demo_filled if not s]
    assert not empty, "\n".join(empty)


def test_the_added_history_is_counted_exactly(loaded: Loaded) -> None:
    """The overdue-verification and unacknowledged-alert panels count exactly what was added."""
    window = Expansion(from_ms=loaded.now_ms - 6 * H, to_ms=loaded.now_ms + 60_000)
    city = next(b for b in boards() if b.uid == "zj-city")
    overdue = next(p for p in city.panels if "overdue" in p.title).queries[0]
    assert loaded.plus.rows(window.expand(overdue.text))[0]["overdue"] == 1
    bases = next(b for b in boards() if b.uid == "zj-bases")
    open_ = next(p for p in bases.panels if "not acknowledged" in p.title).queries[0]
    exp = Expansion(
        from_ms=window.from_ms, to_ms=window.to_ms, variables={"base": Variable.many("base", ["gm-veg-01"])}
    )
    assert loaded.plus.rows(exp.expand(open_.text))[0]["open"] == 1  # a is open, b was acknowledged


def _types(client: InfluxClient, measurement: str) -> dict[str, str]:
    return {v[0]: v[1] for s in client.query(f'SHOW FIELD KEYS FROM "{measurement}"') for v in s["values"]}


def test_the_demo_writes_the_supervisor_series_as_the_panels_read_them(loaded: Loaded) -> None:
    """scale_status, place and alert_state from the demo's own ingest: the names and types of
    dashboards.series, a sum() of online, and the map's counts against the flags and alerts stored."""
    demo = loaded.demo
    for measurement in ("scale_status", "place", "alert_state", "flag", "alert"):
        written, declared = _types(demo, measurement), SERIES[measurement].fields
        assert written, f"the demo wrote no {measurement}"
        assert {k: written[k] for k in written.keys() & declared.keys()} == {
            k: declared[k] for k in written.keys() & declared.keys()
        }, measurement
    assert set(_types(demo, "scale_status")) == set(SERIES["scale_status"].fields)
    window = Expansion(from_ms=loaded.now_ms - 6 * H, to_ms=loaded.now_ms + 60_000)
    city = next(b for b in boards() if b.uid == "zj-city")
    online = next(p for p in city.panels if "online" in p.title).queries[0]
    scales = demo.rows('SELECT last("online") AS online FROM "scale_status" GROUP BY "device"')
    assert demo.rows(window.expand(online.text))[0]["online"] == sum(r["online"] for r in scales) > 0
    geomap = next(p for b in boards() for p in b.panels if p.type == "geomap")
    (market,) = demo.rows(window.expand(geomap.queries[0].text))
    flags = demo.rows(f'SELECT count("value") AS n FROM "flag" WHERE "market" = \'{market["id"]}\'')[0]["n"]
    assert 0 < market["open_flags"] <= flags  # the last status period's count of what was stored
    tests = demo.rows(
        f'SELECT count("seq") AS n FROM "alert" WHERE "market" = \'{market["id"]}\' AND "kind" =~ /^rapid/'
    )[0]["n"]
    market_alerts = demo.rows(
        f'SELECT last("open_alerts") AS n FROM "place" WHERE "id" = \'{market["id"]}\' AND "kind" = \'market\''
    )[0]["n"]
    assert 0 < market_alerts <= tests
    (base,) = demo.rows(window.expand(geomap.queries[1].text))
    assert base["open_alerts"] == 0  # the demo's base stays inside its limits
    opened = demo.rows('SELECT "state", "open", "actor", "id" FROM "alert_state"')
    alert_ids = {r["id"] for r in demo.rows('SELECT "id" FROM "alert"')}
    assert opened and {r["id"] for r in opened} == alert_ids and {r["state"] for r in opened} == {"open"}


def test_alert_rule_queries_run_as_the_backend_expands_them(loaded: Loaded) -> None:
    interval = Interval(ALERT_INTERVAL_MS, seconds_to_hms(ALERT_INTERVAL_MS / 1000))
    by_rule: dict[str, dict[str, list[dict[str, object]]]] = {}
    for rule in rules():
        for rq in rule.queries:
            text = backend_macros(
                rq.query.text, loaded.now_ms - rq.from_s * 1000, loaded.now_ms - rq.to_s * 1000, interval
            )
            assert "$" not in text.replace("$/", ""), text
            by_rule.setdefault(rule.uid, {})[rq.ref] = loaded.plus.query(text)
    # the base alert still open 4 h after it opened is in both windows; the acknowledged one only in B
    unack = by_rule["zj-base-unacknowledged"]
    open_now = {s["tags"]["id"]: s["values"][0][1] for s in unack["A"]}  # type: ignore[index]
    open_then = {s["tags"]["id"]: s["values"][0][1] for s in unack["B"]}  # type: ignore[index]
    both = {i for i in open_now if open_now[i] and open_then.get(i)}
    assert both == {"base-0001:a"}, (open_now, open_then)
    assert by_rule["zj-rapid-positive"]["A"], "the positive written a minute ago is in the 5-minute window"


def test_the_demo_writes_provisioning_for_its_influxdb(loaded: Loaded, influxd: InfluxServer) -> None:
    import yaml

    directory = loaded.data_dir / "grafana"
    assert "GF_PATHS_PROVISIONING" in loaded.printed and "zhijian dashboards push" in loaded.printed
    sources = yaml.safe_load((directory / "datasources" / "zhijian.yaml").read_text())["datasources"]
    assert sources[0]["url"] == influxd.url and sources[0]["jsonData"]["dbName"] == "dash_demo"
    provider = yaml.safe_load((directory / "dashboards" / "zhijian.yaml").read_text())["providers"][0]
    assert sorted(p.name for p in Path(provider["options"]["path"]).glob("*.json")) == sorted(
        f"{b.uid}.json" for b in boards()
    )
