"""``zhijian dashboards push`` with grafana-client against a stand-in for Grafana's HTTP API (Grafana
cannot be installed here; tests/support/grafana_standin.py says what the stand-in checks)."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from dashboards import PushError, boards
from dashboards.alerting import rules
from dashboards.generate import INFLUX1_UID, INFLUX2_UID
from dashboards.push import PushTarget, push
from tests.support.grafana_standin import GrafanaStandIn
from zhijian_cli.main import app


def test_push_creates_then_updates_everything() -> None:
    with GrafanaStandIn() as grafana:
        target = PushTarget(
            grafana_url=grafana.url,
            token=grafana.token,
            influx_url="http://influx.example:8086",
            influx2_url="http://influx2.example:8086",
            influx2_token="tok",
        )
        said: list[str] = []
        first = push(target, say=said.append)
        assert set(grafana.dashboards) == {b.uid for b in boards()}
        assert {d["folderUid"] for d in grafana.dashboards.values()} == {"zhijian"}
        assert set(grafana.rules) == {r.uid for r in rules()}
        assert set(grafana.contact_points) == {"zj-dingtalk", "zj-wecom"}
        assert {cp["type"] for cp in grafana.contact_points.values()} == {"dingding", "wecom"}
        assert grafana.policy is not None and grafana.policy["routes"][0]["object_matchers"] == [
            ["severity", "=", "high"]
        ]
        v1, v2 = grafana.datasources[INFLUX1_UID], grafana.datasources[INFLUX2_UID]
        assert v1["url"] == "http://influx.example:8086" and v1["jsonData"]["dbName"] == "zhijian"
        assert v2["url"] == "http://influx2.example:8086"
        assert v2["jsonData"]["httpHeaderName1"] == "Authorization"
        assert v2["secureJsonData"]["httpHeaderValue1"] == "Token tok"
        assert f"created datasource {INFLUX1_UID}" in said
        # the datasource variable of every dashboard defaults to a datasource that now exists
        for d in grafana.dashboards.values():
            ds_var = d["dashboard"]["templating"]["list"][0]
            assert ds_var["current"]["value"] in grafana.datasources
        second = push(target)
        assert not second.created and len(second.updated) == len(first.created) + len(first.updated)
        assert ("PUT", f"/api/datasources/uid/{INFLUX1_UID}") in grafana.calls
        assert ("PUT", "/api/v1/provisioning/alert-rules/zj-flag-high") in grafana.calls


def test_a_wrong_token_is_a_clear_error() -> None:
    with GrafanaStandIn() as grafana:
        with pytest.raises(PushError, match=r"datasource zhijian-influxql: Grafana answered 401"):
            push(PushTarget(grafana_url=grafana.url, token="wrong"))
        assert not grafana.datasources


def test_an_unreachable_grafana_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(PushError, match="cannot reach Grafana"):
        push(PushTarget(grafana_url=f"http://127.0.0.1:{port}", token="t", timeout_s=2))


def test_cli_push() -> None:
    runner = CliRunner()
    with GrafanaStandIn() as grafana:
        result = runner.invoke(app, ["dashboards", "push", "--grafana", grafana.url, "--token", grafana.token])
        assert result.exit_code == 0, result.output
        assert "created dashboard" not in result.output  # dashboards are always "updated" (POST overwrite)
        assert "pushed to" in result.output and len(grafana.dashboards) == len(boards())
        result = runner.invoke(app, ["dashboards", "push", "--grafana", grafana.url, "--token", "nope"])
        assert result.exit_code == 2 and "401" in result.output
