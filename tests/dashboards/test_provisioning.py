"""The provisioning files: the committed copy is what the generator writes, and the dashboards hold
together (datasource uids, panel ids, grid, Geomap location fields, links, the series they name)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dashboards import COMMITTED, SERIES, ProvisioningError, boards, render, write
from dashboards.alerting import rules
from dashboards.generate import DEFAULT_DASHBOARDS_PATH
from dashboards.model import DS_VARIABLE, GRID_WIDTH
from zhijian_cli.main import app

REGENERATE = (
    "regenerate: .venv/bin/zhijian dashboards write dashboards/provisioning"
    f" --dashboards-path {DEFAULT_DASHBOARDS_PATH}"
)


def test_the_committed_files_are_what_the_generator_writes() -> None:
    files = render()
    committed = {p.relative_to(COMMITTED).as_posix() for p in COMMITTED.rglob("*") if p.is_file()}
    assert committed == set(files), REGENERATE
    for rel, text in files.items():
        assert (COMMITTED / rel).read_text(encoding="utf-8") == text, f"{rel} drifted; {REGENERATE}"


def _dashboards() -> list[dict[str, object]]:
    return [json.loads(t) for rel, t in sorted(render().items()) if rel.endswith(".json")]


def test_six_dashboards_with_chinese_and_english_titles_and_a_geomap() -> None:
    docs = _dashboards()
    assert len(docs) >= 6
    assert len({d["uid"] for d in docs}) == len(docs)
    for d in docs:
        title = str(d["title"])
        assert re.search(r"[\u4e00-\u9fff]", title) and re.search(r"[A-Za-z]", title), title
    assert any(p["type"] == "geomap" for d in docs for p in d["panels"])  # type: ignore[attr-defined]


def test_every_datasource_uid_exists() -> None:
    files = render()
    provisioned = {ds["uid"] for ds in yaml.safe_load(files["datasources/zhijian.yaml"])["datasources"]}
    assert provisioned == {"zhijian-influxql", "zhijian-influxdb2"}
    for d in _dashboards():
        variables = {v["name"]: v for v in d["templating"]["list"]}  # type: ignore[index]
        ds_var = variables[DS_VARIABLE]
        assert ds_var["type"] == "datasource" and ds_var["current"]["value"] in provisioned
        refs = [p["datasource"] for p in d["panels"]]  # type: ignore[attr-defined]
        refs += [t["datasource"] for p in d["panels"] for t in p["targets"]]  # type: ignore[attr-defined]
        refs += [v["datasource"] for v in variables.values() if "datasource" in v]
        for ref in refs:
            uid = ref["uid"]
            assert uid in provisioned or uid == f"${{{DS_VARIABLE}}}", (d["uid"], ref)
    alerting = yaml.safe_load(files["alerting/zhijian.yaml"])
    for rule in alerting["groups"][0]["rules"]:
        for q in rule["data"]:
            assert q["datasourceUid"] in provisioned | {"__expr__"}, rule["uid"]
        assert rule["condition"] in {q["refId"] for q in rule["data"]}


def test_panel_ids_are_unique_and_the_grid_does_not_overlap() -> None:
    for d in _dashboards():
        panels = d["panels"]
        ids = [p["id"] for p in panels]  # type: ignore[attr-defined]
        assert len(ids) == len(set(ids)), d["uid"]
        cells: dict[tuple[int, int], int] = {}
        for p in panels:  # type: ignore[attr-defined]
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= GRID_WIDTH and g["w"] > 0 and g["h"] > 0, (d["uid"], g)
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{d['uid']}: panels {cells[(x, y)]} and {p['id']} overlap"
                    cells[x, y] = p["id"]


def test_a_geomap_layer_reads_location_fields_its_query_returns() -> None:
    maps = [(b, p) for b in boards() for p in b.panels if p.type == "geomap"]
    assert maps
    for _board, panel in maps:
        refs = panel.refs()
        for layer in panel.options["layers"]:
            query = refs[layer["filterData"]["options"]]
            loc = layer["location"]
            assert loc["mode"] == "coords"
            # the influx test proves these columns come back; here: the layer names them
            assert {loc["latitude"], loc["longitude"]} <= set(query.columns), layer["name"]
            colour = layer["config"]["style"]["color"].get("field")
            assert colour is None or colour in query.columns, layer["name"]


def test_links_point_at_dashboards_that_exist() -> None:
    uids = {b.uid for b in boards()}
    for d in _dashboards():
        for link in d["links"]:  # type: ignore[attr-defined]
            assert link["url"].removeprefix("/d/") in uids
        for p in d["panels"]:  # type: ignore[attr-defined]
            for link in p["fieldConfig"]["defaults"].get("links", []):
                assert re.match(r"/d/([\w-]+)\?", link["url"])[1] in uids  # type: ignore[index]


def _names(query: str) -> tuple[set[str], set[str]]:
    return set(re.findall(r'FROM "(\w+)"', query)), set(re.findall(r'"(\w+)"', query))


def test_queries_name_only_the_documented_series() -> None:
    """A panel cannot read a field nobody writes: every quoted name is a measurement of dashboards.series,
    one of its tags or fields, or an alias the query itself defines."""
    queries = [q.text for b in boards() for p in b.panels for q in p.queries]
    queries += [v.query for b in boards() for v in b.variables]
    queries += [rq.query.text for r in rules() for rq in r.queries]
    for text in queries:
        measurements, names = _names(text)
        assert measurements <= set(SERIES), text
        known = set(measurements) | set(re.findall(r'AS "?(\w+)"?', text))
        for m in measurements:
            known |= set(SERIES[m].tags) | set(SERIES[m].fields)
        assert names <= known, f"{sorted(names - known)} in {text}"


def test_units_are_human() -> None:
    units = {p.unit for b in boards() for p in b.panels if p.unit}
    assert {"currencyCNY", "masskg", "percent"} <= units


def test_write_creates_the_tree_and_removes_stale_dashboards(tmp_path: Path) -> None:
    stale = tmp_path / "dashboards" / "zhijian" / "zj-old.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    written = write(tmp_path, dashboards_path="/srv/zj")
    assert not stale.exists()
    assert len(written) == len(render())
    provider = yaml.safe_load((tmp_path / "dashboards" / "zhijian.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/srv/zj"


def test_write_into_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ProvisioningError, match="cannot write"):
        write(blocker)


def test_cli_write_and_help(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["dashboards", "--help"])
    assert result.exit_code == 0 and "provisioning" in result.output and "push" in result.output
    result = runner.invoke(app, ["dashboards", "write", str(tmp_path / "prov")])
    assert result.exit_code == 0, result.output
    provider = yaml.safe_load((tmp_path / "prov" / "dashboards" / "zhijian.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == str(tmp_path / "prov" / "dashboards" / "zhijian")
    assert "GF_PATHS_PROVISIONING" in result.output
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    result = runner.invoke(app, ["dashboards", "write", str(blocker)])
    assert result.exit_code == 2 and "cannot write" in result.output


def test_the_supervisors_doc_names_every_dashboard_rule_and_series() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "supervisors.md").read_text(encoding="utf-8")
    for board in boards():
        assert f"`{board.uid}`" in text and board.title in text, board.uid
    for rule in rules():
        assert rule.title.split(" ")[0] in text, rule.uid
    for series in SERIES.values():
        assert series.written == "ingest", series.measurement  # nothing a panel reads is left unwritten
        assert f"`{series.measurement}`" in text
    for measurement in ("scale_status", "place", "alert_state"):  # the supervisors' own series, in full
        series = SERIES[measurement]
        for name in (*series.tags, *series.fields):
            assert f"`{name}`" in text, f"{series.measurement}.{name}"


def test_variables_inside_regexes_are_multi_value() -> None:
    """Grafana escapes a single value inside `=~ /…/` only when written `$name`; ours are written `${name}`,
    so a variable used in a regex must be multi-value (always escaped), or a value with a dot or a slash
    would change the regex."""
    for board in boards():
        multi = {v.name for v in board.variables if v.multi}
        texts = [q.text for p in board.panels for q in p.queries] + [v.query for v in board.variables]
        for text in texts:
            for regex in re.findall(r"=~ /([^/]*)/", text):
                for name in re.findall(r"\$\{(\w+)\}", regex):
                    assert name in multi, f"{board.uid}: ${{{name}}} in a regex: {text}"


def test_overrides_and_transformations_name_columns_of_their_queries() -> None:
    """A unit override, a join or a sort on a column no query returns would silently do nothing."""
    for board in boards():
        for panel in board.panels:
            columns = {c for q in panel.queries for c in q.columns} | {"Time"}
            named = [o["matcher"]["options"] for o in panel.overrides]
            for t in panel.transformations:
                if t["id"] == "joinByField":
                    named.append(t["options"]["byField"])
                    assert all(t["options"]["byField"] in q.columns for q in panel.queries), panel.title
                if t["id"] == "sortBy":
                    named += [s["field"] for s in t["options"]["sort"]]
            assert set(named) <= columns, f"{board.uid} / {panel.title}: {sorted(set(named) - columns)}"
