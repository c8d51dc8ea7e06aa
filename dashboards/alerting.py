"""Grafana alert rules, contact points and the notification policy, as provisioning documents.

Three rules, each one alert instance per place (the query groups by its tags, so a message names the
stall, market or base):

- a new high-severity anti-cheat flag in the last 5 minutes;
- a positive rapid test in the last 5 minutes;
- a planting-base alert still unacknowledged after :data:`ACK_HOURS` hours: open now (query A, the last
  ``open`` of each alert over 7 days) *and* already open at ``now − N h`` (query B, the same over a window that
  ends N hours ago), multiplied per alert id. (InfluxQL cannot compare a point's age with now() outside the
  time clause, and it narrows a subquery to the outer query's time range, so the test is made in Grafana's
  expressions instead.)

Contact points: DingTalk (钉钉, Grafana type ``dingding``, an actionCard message: Grafana sends actionCard or
link) and WeCom (企业微信, ``wecom``, markdown) group robots,
their webhook URLs from the environment Grafana runs in (``$ZHIJIAN_DINGTALK_WEBHOOK``,
``$ZHIJIAN_WECOM_WEBHOOK``). The policy sends everything to DingTalk and high-severity alerts to WeCom as
well. Alert queries run in Grafana's backend, which expands only ``$timeFilter`` and the interval macros;
``intervalMs`` and ``maxDataPoints`` are given explicitly.

Grafana expands ``$VAR`` from its environment in a provisioning file's labels and contact-point settings,
not in annotations or a rule's queries and expressions: so ``{{ $labels.market }}``, ``$timeFilter`` and
``$C * $D`` stay as written, and none of our labels holds a ``$``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .model import Query

ACK_HOURS = 4
FOLDER_UID, FOLDER_TITLE = "zhijian", "智监 Zhijian"
GROUP = "zhijian-supervision"
DINGTALK, WECOM = "钉钉 DingTalk supervisors", "企业微信 WeCom supervisors"
ALERT_INTERVAL_MS = 1_000
ALERT_MAX_POINTS = 43_200


@dataclass(frozen=True, slots=True)
class RuleQuery:
    """A datasource query of an alert rule: its query and its time range, seconds before now."""

    ref: str
    query: Query
    from_s: int
    to_s: int = 0


@dataclass(frozen=True, slots=True)
class Rule:
    uid: str
    title: str
    summary: str
    severity: str
    queries: tuple[RuleQuery, ...]
    expressions: tuple[dict[str, Any], ...]
    condition: str


def _reduce(ref: str, of: str) -> dict[str, Any]:
    return {
        "refId": ref,
        "type": "reduce",
        "expression": of,
        "reducer": "last",
        "settings": {"mode": "replaceNN", "replaceWithValue": 0},
    }


def _over_zero(ref: str, of: str) -> dict[str, Any]:
    return {
        "refId": ref,
        "type": "threshold",
        "expression": of,
        "conditions": [{"evaluator": {"type": "gt", "params": [0]}}],
    }


def rules() -> list[Rule]:
    open_sensor = (
        'SELECT last("open") AS open FROM "alert_state" WHERE "kind" =~ /^sensor_/ AND $timeFilter'
        ' GROUP BY "id", "base", "district"'
    )
    return [
        Rule(
            "zj-flag-high",
            "高严重度标记 New high-severity flag",
            "A scale at {{ $labels.market }} stall {{ $labels.stall }} ({{ $labels.device }}) was flagged"
            " high: the customer is being cheated or a seal is broken.",
            "high",
            (
                RuleQuery(
                    "A",
                    Query(
                        'SELECT count("seq") AS flags FROM "flag" WHERE "severity" = \'high\' AND $timeFilter'
                        ' GROUP BY "district", "market", "stall", "device"',
                        ("flags", "device"),
                    ),
                    300,
                ),
            ),
            (_reduce("B", "A"), _over_zero("C", "B")),
            "C",
        ),
        Rule(
            "zj-rapid-positive",
            "快检阳性 Positive rapid test",
            "A positive pesticide rapid test: sample from {{ $labels.subject }} ({{ $labels.market }}"
            " {{ $labels.stall }}{{ $labels.base }}); retest twice more and confirm by another method.",
            "high",
            (
                RuleQuery(
                    "A",
                    Query(
                        'SELECT count("inhibition_pct") AS positives FROM "alert" WHERE "kind" ='
                        ' \'rapid_test_positive\' AND $timeFilter GROUP BY "subject", "market", "stall",'
                        ' "base", "vehicle"',
                        ("positives", "subject"),
                        demo=False,
                    ),
                    300,
                ),
            ),
            (_reduce("B", "A"), _over_zero("C", "B")),
            "C",
        ),
        Rule(
            "zj-base-unacknowledged",
            f"基地告警未确认 Planting-base alert unacknowledged for {ACK_HOURS} h",
            f"Base {{{{ $labels.base }}}} has not acknowledged alert {{{{ $labels.id }}}} for {ACK_HOURS} hours:"
            " call the base and ask it to rectify.",
            "medium",
            (
                RuleQuery("A", Query(open_sensor, ("open", "id"), demo=False), 7 * 86_400),
                RuleQuery("B", Query(open_sensor, ("open", "id"), demo=False), 7 * 86_400, ACK_HOURS * 3_600),
            ),
            (
                _reduce("C", "A"),
                _reduce("D", "B"),
                {"refId": "E", "type": "math", "expression": "$C * $D"},
                _over_zero("F", "E"),
            ),
            "F",
        ),
    ]


def rule_document(rule: Rule, datasource_uid: str) -> dict[str, Any]:
    """One rule as Grafana's file provisioning (and, with folderUID and ruleGroup, its API) takes it."""
    data: list[dict[str, Any]] = [
        {
            "refId": q.ref,
            "relativeTimeRange": {"from": q.from_s, "to": q.to_s},
            "datasourceUid": datasource_uid,
            "model": {
                **q.query.target(q.ref),
                "datasource": {"type": "influxdb", "uid": datasource_uid},
                "intervalMs": ALERT_INTERVAL_MS,
                "maxDataPoints": ALERT_MAX_POINTS,
            },
        }
        for q in rule.queries
    ]
    data += [
        {
            "refId": e["refId"],
            "relativeTimeRange": {"from": 0, "to": 0},
            "datasourceUid": "__expr__",
            "model": {**e, "datasource": {"type": "__expr__", "uid": "__expr__"}},
        }
        for e in rule.expressions
    ]
    return {
        "uid": rule.uid,
        "title": rule.title,
        "condition": rule.condition,
        "data": data,
        "noDataState": "OK",
        "execErrState": "Error",
        "for": "0s",
        "annotations": {"summary": rule.summary},
        "labels": {"severity": rule.severity, "team": "supervisors"},
        "isPaused": False,
    }


def rules_file(datasource_uid: str) -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": GROUP,
                "folder": FOLDER_TITLE,
                "interval": "1m",
                "rules": [rule_document(r, datasource_uid) for r in rules()],
            }
        ],
    }


def contact_points() -> list[dict[str, Any]]:
    message = "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}"
    return [
        {
            "orgId": 1,
            "name": DINGTALK,
            "receivers": [
                {
                    "uid": "zj-dingtalk",
                    "type": "dingding",
                    "settings": {"url": "$ZHIJIAN_DINGTALK_WEBHOOK", "msgType": "actionCard", "message": message},
                    "disableResolveMessage": False,
                }
            ],
        },
        {
            "orgId": 1,
            "name": WECOM,
            "receivers": [
                {
                    "uid": "zj-wecom",
                    "type": "wecom",
                    "settings": {"url": "$ZHIJIAN_WECOM_WEBHOOK", "msgtype": "markdown", "message": message},
                    "disableResolveMessage": False,
                }
            ],
        },
    ]


def policy() -> dict[str, Any]:
    """The notification policy tree (provisioning it replaces the organisation's whole tree)."""
    return {
        "receiver": DINGTALK,
        "group_by": ["grafana_folder", "alertname"],
        "routes": [{"receiver": WECOM, "object_matchers": [["severity", "=", "high"]], "continue": True}],
    }
