"""Drive the registry API from its own OpenAPI document with schemathesis' engine (every phase: examples,
coverage, fuzzing, stateful; every check) and count what came back: calls, server errors, and answers
outside the document per check. tests/device_registry/test_api_fuzz.py runs a small round in process;
benchmarks/registry_api_fuzz.py runs ≥ 5 000 calls against a real ``zhijian registry serve``.

Two rules of the API no JSON Schema can state, so that the "positive data accepted" check holds:

- a business licence's last character is a check character over the other 17 (GB 32100-2015; the
  document marks such fields ``format: uscc``): the harness puts the right one on generated codes;
- an alert limit's ``low`` must be below its ``high``: the harness orders generated pairs;
- a device moved (PATCH) goes where its kind may be (device_registry.placement; for registering, the
  document states the rule): the harness leaves out a move to a place of the wrong kind;
- a body stays within the server's bound (1 MiB; a batch of case events the schema allows can be 14 MB,
  answered 413 as documented): the harness cuts a generated batch to the events that fit.

Both are refused with a 422 the document describes on the operations concerned. Nothing is excluded.
The fuzzer may revoke the very token it calls with (it lists tokens, then revokes what it found), so the
token comes from :class:`FreshAdminToken`, which makes a new one whenever the last stopped working.
"""

from __future__ import annotations

import collections
import json
import re
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events
from schemathesis.generation.modes import GenerationMode
from sqlalchemy import Engine

from device_profiles import builtin
from device_registry import Principal, Role
from device_registry import models as m
from device_registry.body_limit import MAX_BODY_BYTES
from device_registry.db import sessions
from device_registry.placement import placement_problem
from device_registry.schemas import DeviceIn, DistrictIn, MarketIn, StallIn, TokenIn
from device_registry.service import Registry
from device_registry.uscc import check_character

ALL_CHECKS = "all"
_PLACE_FIELDS = ("market_id", "stall_code", "base_id", "vehicle_id")
_USCC_BODY = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def seed_registry(engine: Engine) -> None:
    """A district, a market, a stall and a scale, so that generated calls find something."""
    with sessions(engine)() as db:
        reg = Registry(db, Principal("bootstrap", Role.ADMIN))
        reg.add_district(DistrictIn(id="futian", name="Futian"))
        reg.add_market(MarketIn(id="futian-no1", name="No. 1", district_id="futian", operator="Op"))
        reg.add_stall(StallIn(market_id="futian-no1", code="A-017", vendor="Li", business_licence=_licence()))
        reg.register(
            DeviceIn(id="scale-0001", profile="zj-pcs-30", serial_no="S", market_id="futian-no1", stall_code="A-017")
        )


def _licence() -> str:
    body = "91350100M000100Y4"
    return body + check_character(body)


class FreshAdminToken:
    """An admin token for every call; a new one when the fuzzer revoked (or otherwise spoilt) the last."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.token: str | None = None
        self.token_id: str | None = None
        self.minted = 0

    def get(self, case: Any, ctx: Any) -> str:
        with sessions(self.engine)() as db:
            row = db.get(m.ApiToken, self.token_id) if self.token_id else None
            if row is None or row.revoked_at is not None:
                made = Registry(db, Principal("fuzz", Role.ADMIN)).create_token(TokenIn(name="fuzz", role=Role.ADMIN))
                self.token, self.token_id = made.token, made.id
                self.minted += 1
        assert self.token is not None
        return self.token

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


_USCC_SHAPE = re.compile(f"[{_USCC_BODY}]{{2}}[0-9]{{6}}[{_USCC_BODY}]{{10}}")


class BeyondSchema:
    """What the API checks beyond its JSON Schema, made to hold in every generated case (the coverage
    phase builds licences from their pattern): a licence of the right shape gets its right check
    character, an alert limit's low and high come in order, and a verification of a device whose profile
    has no metrology (a sensor the stateful phase registered) names its class, max and e. A case that
    breaks the schema otherwise still does."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, ctx: Any, case: Any) -> Any:
        _seeded_for_nulls(case)
        body = case.body
        if isinstance(body, dict):
            _licences(body)
            if case.operation.path == "/v1/bases":
                _ordered_limits(body)
            if case.operation.path == "/v1/devices/{device_id}/verifications":
                self._metrology(str((case.path_parameters or {}).get("device_id")), body)
            if case.operation.path == "/v1/devices/{device_id}" and case.method.upper() == "PATCH" and _positive(case):
                self._placement(str((case.path_parameters or {}).get("device_id")), body)
            if case.operation.path == "/v1/case-events" and _positive(case):
                _within_body_bound(body)
        return case

    def _placement(self, device_id: str, body: dict[str, Any]) -> None:
        """A move keeps to where the device's kind may be (the body cannot say its kind: the profile is
        the registered device's), else the move is left out and the rest of the update stays."""
        with sessions(self.engine)() as db:
            device = db.get(m.Device, device_id)
        if device is None:
            return
        named = {k: v for k in _PLACE_FIELDS if (v := body.get(k)) is not None}
        if not all(isinstance(v, str) for v in named.values()):
            return  # a case breaking the schema stays as it is: it must be refused for that
        kind = {("market_id", "stall_code"): "stall", ("base_id",): "base", ("vehicle_id",): "vehicle"}.get(
            tuple(k for k in _PLACE_FIELDS if k in named)
        )
        if kind is not None and placement_problem(device.profile, device.kind, kind):
            for name in named:
                del body[name]

    def _metrology(self, device_id: str, body: dict[str, Any]) -> None:
        with sessions(self.engine)() as db:
            device = db.get(m.Device, device_id)
        if device is None or builtin(device.profile).metrology is not None:
            return
        for key, value in (("accuracy_class", "III"), ("max_g", 30_000), ("e_mg", 10_000)):
            if body.get(key) is None:
                body[key] = value


#: ids the seeded registry has, for path parameters a stateful link filled from a null (schemathesis writes
#: the text "None", which no pattern admits, and then expects the call to be accepted)
#: (a case event's result names no case when nothing opened one: its ``case_id`` is null; case 1 then stands
#: in, which exists once any case opened and is otherwise a 404 the document allows)
_SEEDED = {
    "market_id": "futian-no1",
    "code": "A-017",
    "stall_code": "A-017",
    "device_id": "scale-0001",
    "case_id": "1",
}


def _seeded_for_nulls(case: Any) -> None:
    params = case.path_parameters or {}
    for name, value in list(params.items()):
        if value in ("None", None) and name in _SEEDED:  # a stateful link that followed a null: not a real id
            params[name] = _SEEDED[name]


def _positive(case: Any) -> bool:
    """A case generated to fit the schema (a negative one must stay as it was made: refused for itself)."""
    meta = getattr(case, "meta", None)
    return meta is None or meta.generation.mode == GenerationMode.POSITIVE


def _within_body_bound(body: dict[str, Any]) -> None:
    """A batch of case events the schema allows (500 events of 50 evidence entries) can pass the server's
    body bound, answered 413 as documented: the batch is cut to the events that fit, as the ingest's
    reporter sends them (it resends a refused batch one event at a time)."""
    events = body.get("events")
    if not isinstance(events, list):
        return
    while len(events) > 1 and len(json.dumps(body).encode()) > MAX_BODY_BYTES * 0.9:
        events.pop()


def _licences(body: dict[str, Any]) -> None:
    for key in ("business_licence", "operator_licence"):
        value = body.get(key)
        if isinstance(value, str) and _USCC_SHAPE.fullmatch(value.strip().upper()):
            code = value.strip().upper()
            body[key] = code[:17] + check_character(code[:17])


def _ordered_limits(body: dict[str, Any]) -> None:
    limits = body.get("alert_limits")
    for limit in limits.values() if isinstance(limits, dict) else ():
        low, high = (limit.get("low"), limit.get("high")) if isinstance(limit, dict) else (None, None)
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)) and low >= high:
            if low == high:
                del limit["high"]
            else:
                limit["low"], limit["high"] = high, low


@dataclass
class Tally:
    """What a run saw."""

    calls: int = 0
    server_errors: int = 0
    violations: collections.Counter[str] = field(default_factory=collections.Counter)
    first_failure: dict[str, str] = field(default_factory=dict)
    engine_errors: list[str] = field(default_factory=list)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    tokens_minted: int = 0

    def add(self, recorder: Any) -> None:
        for interaction in recorder.interactions.values():
            self.calls += 1
            if interaction.response is not None:
                self.statuses[interaction.response.status_code] += 1
                if interaction.response.status_code >= 500:
                    self.server_errors += 1
        for nodes in recorder.checks.values():
            for node in nodes:
                if node.status == "failure":
                    self.violations[node.name] += 1
                    if node.name not in self.first_failure and node.failure_info is not None:
                        info = node.failure_info
                        self.first_failure[node.name] = (
                            f"{info.failure.title}: {info.failure.message}\n{info.code_sample}"
                        )

    def summary(self) -> str:
        lines = [
            f"calls {self.calls}, server errors {self.server_errors}, answers outside the spec "
            f"{sum(self.violations.values())}"
        ]
        lines += [f"  {name}: {n}" for name, n in sorted(self.violations.items())]
        lines += [f"  statuses: {dict(sorted(self.statuses.items()))}; admin tokens made: {self.tokens_minted}"]
        lines += [f"  engine error: {e}" for e in self.engine_errors]
        return "\n".join(lines)

    def failures_text(self) -> str:
        return "\n\n".join(f"[{name}] {text}" for name, text in self.first_failure.items())


def run(
    engine: Engine,
    *,
    app: Any = None,
    base_url: str | None = None,
    max_examples: int = 10,
    seed: int = 1,
    workers: int = 1,
) -> Tally:
    """One schemathesis run of every phase and check against ``app`` (in process) or ``base_url``."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": seed,
            "workers": workers,
            "checks": {"enabled": True},
            "phases": {"enabled": True},
            "generation": {"max-examples": max_examples, "mode": "all"},
            "suppress-health-check": ["all"],
        }
    )
    if app is not None:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    else:
        assert base_url is not None
        schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)
        schema.config.update(base_url=base_url)
    provider = FreshAdminToken(engine)
    schema.auth(refresh_interval=None)(
        type(
            "Token",
            (),
            {
                "get": lambda _s, case, ctx: provider.get(case, ctx),
                # the last step before a call, also for stateful cases whose links were just filled in
                "set": lambda _s, case, data, ctx: (_seeded_for_nulls(case), provider.set(case, data, ctx))[1],
            },
        )
    )
    schema.hook("map_case")(BeyondSchema(engine))
    tally = Tally()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            tally.add(event.recorder)
        elif isinstance(event, events.NonFatalError):
            tally.engine_errors.append(f"{event.label}: {event.info.title}: {event.info.message}"[:500])
        elif isinstance(event, events.FatalError):
            raise event.exception
    tally.tokens_minted = provider.minted
    return tally
