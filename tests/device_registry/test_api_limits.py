"""What hostile or broken requests get from the registry API: bodies over the bound refused unread (in
process and against a real `zhijian registry serve`, its memory measured), bytes that are not UTF-8 and
lone surrogates answered 400/422 in the documented shapes, 405s naming every method of the path, values
the schema forbids refused, and tokens that always expire."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from device_registry import Principal, Role
from device_registry import models as m
from device_registry.api import create_app
from device_registry.body_limit import MAX_BODY_BYTES, BodyLimit
from device_registry.db import sessions
from device_registry.schemas import TokenIn
from device_registry.service import BundleDefaults, Registry, bootstrap_admin_token
from tests.support.registry import KEY_SECRET
from tests.support.registry_server import answers_health
from tests.support.waiting import wait_until
from zhijian_cli.servers import free_port


def _admin(engine: Engine) -> dict[str, str]:
    with sessions(engine)() as db:
        made = Registry(db, Principal("bootstrap", Role.ADMIN)).create_token(TokenIn(name="t", role=Role.ADMIN))
    return {"Authorization": f"Bearer {made.token}"}


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine, bundles=BundleDefaults(key_secret=KEY_SECRET), max_body_bytes=4096)) as c:
        c.headers.update(_admin(engine))
        yield c


def test_a_body_over_the_bound_is_refused_with_413_in_the_error_shape(client: TestClient) -> None:
    big = {"id": "futian", "name": "x" * 5000}
    r = client.post("/v1/districts", json=big)
    assert r.status_code == 413 and r.json() == {"detail": "the request body is larger than 4096 bytes"}
    padded = json.dumps({"id": "futian", "name": "Futian"}) + " " * 4000
    assert client.post("/v1/districts", content=padded, headers={"Content-Type": "application/json"}).status_code == 201
    metrics = client.get("/metrics").text
    assert 'route="unmatched",status="413"' in metrics


def _drive(app: Any, chunks: int, chunk: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes, int]:
    """Run ``app`` on one POST whose body arrives in ``chunks`` pieces; status, body, pieces taken."""
    taken = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal taken
        taken += 1
        return {"type": "http.request", "body": chunk, "more_body": taken < chunks}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(app(scope, receive, send))
    start = next(x for x in sent if x["type"] == "http.response.start")
    return start["status"], b"".join(x.get("body", b"") for x in sent if x["type"] == "http.response.body"), taken


async def _reads_everything(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"read"})


def test_the_limit_counts_a_chunked_body_and_stops_reading_at_the_bound() -> None:
    limited = BodyLimit(_reads_everything, max_bytes=64 * 1024)
    status, body, taken = _drive(limited, 10_000, b"x" * 1024, [])  # 10 MB offered, no Content-Length
    assert status == 413 and json.loads(body)["detail"] == "the request body is larger than 65536 bytes"
    assert taken == 65  # 64 pieces fit, the 65th passes the bound: nothing after it is read
    status, body, taken = _drive(limited, 64, b"x" * 1024, [])
    assert (status, body, taken) == (200, b"read", 64)
    # a declared length over the bound is refused before the app reads anything
    status, _, taken = _drive(limited, 10_000, b"x" * 1024, [(b"content-length", str(10**7).encode())])
    assert status == 413 and taken == 0


def test_bytes_that_are_not_utf8_and_lone_surrogates_are_refused_in_the_documented_shapes(
    client: TestClient,
) -> None:
    raw = b'{"id": "futian", "name": "Fu\xfftian"}'
    r = client.post("/v1/districts", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and isinstance(r.json()["detail"], str)
    for field in ("name", "id"):
        text = '{"id": "futian", "name": "Futian"}'.replace('"Futian"' if field == "name" else '"futian"', '"\\ud800"')
        r = client.post("/v1/districts", content=text, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text
        (problem,) = r.json()["detail"]
        assert problem["loc"] == ["body", field] and problem["input"] == "?"
    r = client.post(
        "/v1/tokens", content='{"name": "\\udfff", "role": "viewer"}', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    documented = client.get("/openapi.json").json()["paths"]["/v1/districts"]["post"]["responses"]
    assert {"400", "413", "422"} <= set(documented)


def test_nan_and_infinity_are_refused_in_the_documented_shape(client: TestClient) -> None:
    """Python's JSON parser accepts NaN and ±Infinity; echoed back in the 422 they once made it a 500 (an
    outside review found five such answers)."""
    for path, text in (
        ("/v1/tokens", '{"name": "x", "role": "viewer", "expires_days": NaN}'),
        ("/v1/tokens", '{"name": "x", "role": "viewer", "expires_days": -Infinity}'),
        ("/v1/districts", '{"id": "nn", "name": NaN}'),
        ("/v1/markets", '{"id": Infinity, "name": "m", "district_id": "futian", "operator": "o"}'),
    ):
        r = client.post(path, content=text, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, (path, text, r.status_code, r.text)
        assert isinstance(r.json()["detail"], list)


def test_a_405_names_every_method_of_the_path(client: TestClient) -> None:
    for path, methods in (("/v1/bases", {"GET", "POST"}), ("/v1/devices/scale-0001", {"GET", "PATCH"})):
        r = client.delete(path)
        assert r.status_code == 405 and r.json() == {"detail": "Method Not Allowed"}
        assert set(r.headers["allow"].split(", ")) == methods


def test_values_the_schema_forbids_are_refused(client: TestClient) -> None:
    for query in ("due_by=0", "due_by=20260101", "due_by=2026-01-01T00:00:00"):
        assert client.get(f"/v1/devices?{query}").status_code == 422, query
    assert client.get("/v1/devices?due_by=2026-01-31").status_code == 200
    for query in ("until=0.5", "since=2026-01-01T00:00:00", "since=2026-01-01"):
        assert client.get(f"/v1/audit?{query}").status_code == 422, query
    for query in ("since=2026-01-01T00:00:00Z", "until=0001-01-01T00:00:00%2B05:00", "until=9999-12-31T23:59:60-05:00"):
        assert client.get(f"/v1/audit?{query}").status_code == 200, query
    assert client.post("/v1/tokens", json={"name": "t", "role": "viewer", "expires_days": "5"}).status_code == 422
    assert client.post("/v1/tokens", json={"name": "t", "role": "viewer", "expires_days": 5.0}).status_code == 201
    assert client.post("/v1/districts", json={"id": "d1", "name": " \t "}).status_code == 422
    made = client.post("/v1/districts", json={"id": "d1", "name": "  Futian\t"})
    assert made.status_code == 201 and made.json()["name"] == "Futian"


def test_tokens_always_expire(client: TestClient, engine: Engine) -> None:
    made = client.post("/v1/tokens", json={"name": "grafana", "role": "viewer"})
    assert made.status_code == 201
    expires = dt.datetime.fromisoformat(made.json()["expires_at"])
    assert dt.timedelta(days=89) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(days=90)
    for days in (0, -1, None, 3651):
        r = client.post("/v1/tokens", json={"name": "forever", "role": "viewer", "expires_days": days})
        assert r.status_code == 422, days
    with sessions(engine)() as db:
        forever = bootstrap_admin_token(db, "first admin", "local:root", never_expires=True)
        assert forever.expires_at is None
        entry = db.query(m.AuditEntry).filter_by(entity="token", entity_id=forever.id).one()
        assert entry.actor == "local:root" and entry.detail["never_expires"] is True


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def _send_huge(port: int, head: bytes, chunks: Iterator[bytes]) -> bytes:
    """Send ``head`` then ``chunks`` until the server answers or hangs up; its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        answer = b""
        for chunk in chunks:
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
            if b"\r\n\r\n" in answer:
                break
            try:
                sock.setblocking(True)
                sock.sendall(chunk)
                sock.setblocking(False)
            except OSError:  # the server answered and closed: the rest is not read
                break
        sock.setblocking(True)
        try:  # the server closes after its answer (connection: close)
            while True:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except OSError:
            pass
        return answer


def test_a_real_server_refuses_200_mb_bodies_without_growing(tmp_path: Path) -> None:
    """`zhijian registry serve` (uvicorn) takes a 200 MB body, declared or chunked, from a caller with a
    token: 413 both times, and its memory stays where it was (before the bound: 1.12 GB)."""
    env = {
        **os.environ,
        "ZHIJIAN_REGISTRY_URL": f"sqlite:///{tmp_path / 'registry.sqlite'}",
        "ZHIJIAN_KEY_SECRET_FILE": str(tmp_path / "registry.key"),
    }
    init = subprocess.run(
        [sys.executable, "-m", "zhijian_cli", "registry", "init", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    token = json.loads(init.stdout)["admin_token"]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "zhijian_cli", "registry", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: answers_health(url), 60), "the registry did not answer /health"
        auth = {"Authorization": f"Bearer {token}"}
        padded = json.dumps({"id": "futian", "name": "Futian"}).encode() + b" " * (MAX_BODY_BYTES - 100)
        ok = httpx.post(f"{url}/v1/districts", content=padded, headers=auth | {"Content-Type": "application/json"})
        assert ok.status_code == 201  # just under the bound: taken
        before = _rss_kib(server.pid)
        size, piece = 200 * 1024 * 1024, b"x" * (1024 * 1024)
        common = f"POST /v1/districts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        common += "Content-Type: application/json\r\n"
        declared = _send_huge(
            port, f"{common}Content-Length: {size}\r\n\r\n".encode(), iter([piece] * (size // len(piece)))
        )
        chunked = _send_huge(
            port,
            f"{common}Transfer-Encoding: chunked\r\n\r\n".encode(),
            iter([b"%x\r\n" % len(piece) + piece + b"\r\n"] * (size // len(piece))),
        )
        after = _rss_kib(server.pid)
        for answer in (declared, chunked):
            assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
            assert b'{"detail": "the request body is larger than 1048576 bytes"}' in answer
        print(f"server RSS before {before / 1024:.1f} MiB, after two 200 MB bodies {after / 1024:.1f} MiB")
        assert after - before < 20 * 1024, (before, after)
        assert httpx.get(f"{url}/v1/whoami", headers=auth).status_code == 200  # and it still serves
    finally:
        server.terminate()
        server.wait(10)
