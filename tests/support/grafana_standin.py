"""A stand-in for Grafana's HTTP API, for testing ``zhijian dashboards push`` — a stand-in because Grafana
cannot be installed on these machines (see ../shared/ARCHITECTURE.md). It speaks only the endpoints
grafana-client calls for a push, with Grafana's status codes and the checks Grafana makes that a push
could break: a bearer token, dashboards only into an existing folder, alert rules only into an existing
folder and on existing datasources, a notification policy only onto existing contact points. It keeps
what it was sent so tests can read it back. A thread on port 0, as httpx's tests run their server."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class GrafanaStandIn:
    def __init__(self, token: str = "glsa_test") -> None:
        self.token = token
        self.datasources: dict[str, dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.contact_points: dict[str, dict[str, Any]] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.policy: dict[str, Any] | None = None
        self.calls: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> GrafanaStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        grafana = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                grafana.calls.append((method, self.path))
                if self.headers.get("Authorization") != f"Bearer {grafana.token}":
                    self._send(401, {"message": "Unauthorized"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                status, answer = grafana.answer(method, self.path.split("?")[0], body)
                self._send(status, answer)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PUT(self) -> None:
                self._route("PUT")

        return Handler

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        m = re.fullmatch(r"/api/datasources(?:/uid/([\w-]+))?", path)
        if m:
            uid = m[1]
            if method == "GET":
                return (200, self.datasources[uid]) if uid in self.datasources else (404, {"message": "not found"})
            if method == "POST":
                if body["uid"] in self.datasources:
                    return 409, {"message": "data source with the same uid already exists"}
                self.datasources[body["uid"]] = body
                return 200, {"message": "Datasource added", "datasource": body}
            if uid not in self.datasources:
                return 404, {"message": "not found"}
            self.datasources[uid] = body
            return 200, {"message": "Datasource updated"}
        m = re.fullmatch(r"/api/folders(?:/([\w-]+))?", path)
        if m:
            if method == "GET":
                uid = m[1]
                return (200, self.folders[uid]) if uid in self.folders else (404, {"message": "folder not found"})
            self.folders[body["uid"]] = body
            return 200, body
        if path == "/api/dashboards/db":
            if body.get("folderUid") not in self.folders:
                return 400, {"message": "folder not found"}
            self.dashboards[body["dashboard"]["uid"]] = body
            return 200, {"status": "success", "uid": body["dashboard"]["uid"]}
        m = re.fullmatch(r"/api/v1/provisioning/contact-points(?:/([\w-]+))?", path)
        if m:
            if method == "GET":
                return 200, list(self.contact_points.values())
            if method == "PUT" and m[1] not in self.contact_points:
                return 404, {"message": "contact point not found"}
            self.contact_points[body["uid"]] = body
            return 202, body
        m = re.fullmatch(r"/api/v1/provisioning/alert-rules(?:/([\w-]+))?", path)
        if m:
            uid = m[1]
            if method == "GET":
                return (200, self.rules[uid]) if uid in self.rules else (404, {"message": "rule not found"})
            if body.get("folderUID") not in self.folders:
                return 400, {"message": "folder does not exist"}
            for q in body["data"]:
                if q["datasourceUid"] not in self.datasources and q["datasourceUid"] != "__expr__":
                    return 400, {"message": f"data source {q['datasourceUid']} not found"}
            self.rules[body["uid"]] = body
            return (201 if method == "POST" else 200), body
        if path == "/api/v1/provisioning/policies" and method == "PUT":
            names = {cp["name"] for cp in self.contact_points.values()}
            receivers = {body["receiver"], *(r["receiver"] for r in body.get("routes", []))}
            if not receivers <= names:
                return 400, {"message": f"receivers {sorted(receivers - names)} do not exist"}
            self.policy = body
            return 202, {"message": "policies updated"}
        return 404, {"message": f"no such endpoint in the stand-in: {method} {path}"}
