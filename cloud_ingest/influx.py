"""InfluxDB over its portable HTTP API: line protocol to ``/write``, InfluxQL to ``/query``.

InfluxDB 1.x serves these natively; 2.x and 3.x serve them through their v1 compatibility API (database
and retention policy mapped to a bucket, token as password). Writes name their precision explicitly
(nanoseconds), are gzip-compressed and carry at most :data:`MAX_LINES` lines per request.

With ``create_missing=True`` (the ingest) a write that finds no database creates it and is sent again:
an ingest started while InfluxDB is down spools, and a fresh InfluxDB that comes up later has no
database yet; its spooled points must not be refused as bad (a 404 is a 4xx, "our lines are wrong").
A 5xx answer is :class:`StoreUnavailable` for queries as for writes (InfluxDB starting, overloaded).
"""

from __future__ import annotations

import gzip
import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx

from .errors import StoreRejected, StoreUnavailable

log = logging.getLogger(__name__)
MAX_LINES = 5_000


class InfluxClient:
    """A small client for one database."""

    def __init__(
        self,
        url: str,
        database: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        retries: int = 3,
        create_missing: bool = False,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.retries = retries
        self.create_missing = create_missing
        auth = httpx.BasicAuth(username, password or "") if username else None
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, auth=auth)

    def close(self) -> None:
        self._http.close()

    def ping(self) -> bool:
        try:
            return self._http.get("/ping").status_code == 204
        except httpx.HTTPError:
            return False

    def create_database(self) -> None:
        """Create the database if it does not exist (InfluxQL ``CREATE DATABASE`` is idempotent)."""
        self.query(f'CREATE DATABASE "{self.database}"', method="POST")

    def write(self, lines: Sequence[str]) -> None:
        """Write lines in requests of at most :data:`MAX_LINES`, retrying transient failures."""
        for start in range(0, len(lines), MAX_LINES):
            body = gzip.compress(("\n".join(lines[start : start + MAX_LINES]) + "\n").encode(), compresslevel=1)
            self._post_write(body)

    def _post_write(self, body: bytes) -> None:
        delay = 0.2
        created = False
        attempt = 0
        while True:
            try:
                resp = self._http.post(
                    "/write",
                    params={"db": self.database, "precision": "ns"},
                    content=body,
                    headers={"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"},
                )
            except httpx.HTTPError as exc:
                error: Exception = StoreUnavailable(f"write to {self.url}: {exc}")
            else:
                if resp.status_code == 204:
                    return
                if self._missing_database(resp) and not created:
                    log.info("InfluxDB at %s has no database %s: creating it", self.url, self.database)
                    self.create_database()
                    created = True
                    continue  # at once, and not counted as a failed attempt
                if 400 <= resp.status_code < 500:
                    raise StoreRejected(f"InfluxDB refused the write ({resp.status_code}): {resp.text[:300]}")
                error = StoreUnavailable(f"InfluxDB answered {resp.status_code}: {resp.text[:300]}")
            if attempt == self.retries:
                raise error
            attempt += 1
            log.debug("write attempt %d failed: %s", attempt, error)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _missing_database(self, resp: httpx.Response) -> bool:
        return self.create_missing and resp.status_code == 404 and "database not found" in resp.text

    def query(self, influxql: str, *, method: str = "GET") -> list[dict[str, Any]]:
        """Run InfluxQL; the ``series`` of the first statement (``[]`` when empty)."""
        params = {"db": self.database, "q": influxql, "epoch": "ns"}
        try:
            if method == "POST":
                resp = self._http.post("/query", data=params)
            else:
                resp = self._http.get("/query", params=params)
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"query {self.url}: {exc}") from exc
        if resp.status_code >= 500:
            raise StoreUnavailable(f"query: InfluxDB answered {resp.status_code}: {resp.text[:300]}")
        if resp.status_code != 200:
            raise StoreRejected(f"query failed ({resp.status_code}): {resp.text[:300]}")
        results = resp.json().get("results", [{}])
        if results and "error" in results[0]:
            raise StoreRejected(f"InfluxQL error: {results[0]['error']}")
        series: list[dict[str, Any]] = results[0].get("series", []) if results else []
        return series

    def rows(self, influxql: str) -> list[dict[str, Any]]:
        """Query results as one dict per row (column name → value), all series concatenated."""
        out: list[dict[str, Any]] = []
        for s in self.query(influxql):
            tags = s.get("tags", {})
            out.extend({**tags, **dict(zip(s["columns"], v, strict=True))} for v in s["values"])
        return out
