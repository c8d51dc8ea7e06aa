"""Upload the generated datasources, folder, dashboards, contact points, alert rules and policy to a running
Grafana over its HTTP API with ``grafana-client``; idempotent (what exists is updated, by uid).

Order: datasources (dashboards and rules name them), the folder, dashboards, contact points, alert rules,
the notification policy (last: it names the contact points). Through the API nothing is read from the
environment, so the InfluxDB URL, database and 2.x token are given here. Objects pushed this way stay
editable in Grafana's UI (the API's default provenance), unlike file-provisioned ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from .alerting import FOLDER_TITLE, FOLDER_UID, GROUP, contact_points, policy, rule_document, rules
from .errors import PushError
from .generate import INFLUX1_UID, boards, datasources

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class PushTarget:
    grafana_url: str
    token: str | None = None  # a service account token; None: user and password in the URL
    influx_url: str = "http://127.0.0.1:8086"
    influx_db: str = "zhijian"
    influx2_url: str = ""
    influx2_token: str = ""
    timeout_s: float = 10.0


@dataclass
class PushReport:
    created: list[str]
    updated: list[str]


def _missing(exc: GrafanaException) -> bool:
    return isinstance(exc, GrafanaClientError) and exc.status_code == 404


def push(target: PushTarget, say: Callable[[str], None] = lambda _m: None) -> PushReport:
    """Push everything; raises :class:`PushError` naming the object Grafana refused and its answer."""
    api = GrafanaApi.from_url(target.grafana_url, credential=target.token, timeout=target.timeout_s)
    report = PushReport([], [])
    current = ""

    def done(what: str, created: bool) -> None:
        (report.created if created else report.updated).append(what)
        say(f"{'created' if created else 'updated'} {what}")

    try:
        for generated in datasources(influx_url=target.influx_url, database=target.influx_db):
            ds = dict(generated)
            current = f"datasource {ds['uid']}"
            if ds["uid"] != INFLUX1_UID:  # through the API nothing reads Grafana's environment
                ds["url"] = target.influx2_url
                ds["secureJsonData"] = {"httpHeaderValue1": f"Token {target.influx2_token}"}
            done(current, _upsert_datasource(api, ds))
        current = f"folder {FOLDER_UID}"
        done(current, _ensure_folder(api))
        for board in boards():
            current = f"dashboard {board.uid}"
            api.dashboard.update_dashboard(
                {"dashboard": board.render(INFLUX1_UID), "folderUid": FOLDER_UID, "overwrite": True}
            )
            done(current, False)
        for cp in contact_points():
            for receiver in cp["receivers"]:
                current = f"contact point {receiver['uid']}"
                doc = {
                    "uid": receiver["uid"],
                    "name": cp["name"],
                    "type": receiver["type"],
                    "settings": receiver["settings"],
                    "disableResolveMessage": receiver["disableResolveMessage"],
                }
                done(current, _upsert_contact_point(api, doc))
        for rule in rules():
            current = f"alert rule {rule.uid}"
            doc = {**rule_document(rule, INFLUX1_UID), "folderUID": FOLDER_UID, "ruleGroup": GROUP, "orgID": 1}
            done(current, _upsert_rule(api, rule.uid, doc))
        current = "notification policy"
        api.alertingprovisioning.set_notification_policy_tree(policy())
        done(current, False)
    except GrafanaException as exc:
        raise PushError(f"{target.grafana_url}: {current}: Grafana answered {exc.status_code}: {exc.message}") from exc
    except OSError as exc:  # requests' connection errors derive from OSError (IOError)
        raise PushError(f"{target.grafana_url}: {current}: cannot reach Grafana: {exc}") from exc
    return report


def _upsert_datasource(api: GrafanaApi, ds: dict[str, Any]) -> bool:
    try:
        api.datasource.get_datasource_by_uid(ds["uid"])
    except GrafanaException as exc:
        if not _missing(exc):
            raise
        api.datasource.create_datasource(ds)
        return True
    api.datasource.update_datasource_by_uid(ds["uid"], ds)
    return False


def _ensure_folder(api: GrafanaApi) -> bool:
    try:
        api.folder.get_folder(FOLDER_UID)
    except GrafanaException as exc:
        if not _missing(exc):
            raise
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        return True
    return False


def _upsert_contact_point(api: GrafanaApi, doc: dict[str, Any]) -> bool:
    known = {cp.get("uid") for cp in api.alertingprovisioning.get_contactpoints()}
    if doc["uid"] in known:
        api.alertingprovisioning.update_contactpoint(doc["uid"], doc)
        return False
    api.alertingprovisioning.create_contactpoint(doc)
    return True


def _upsert_rule(api: GrafanaApi, uid: str, doc: dict[str, Any]) -> bool:
    try:
        api.alertingprovisioning.get_alertrule(uid)
    except GrafanaException as exc:
        if not _missing(exc):
            raise
        api.alertingprovisioning.create_alertrule(doc)
        return True
    api.alertingprovisioning.update_alertrule(uid, doc)
    return False
