"""Property-based test of the API from its own OpenAPI document (schemathesis' engine: examples, coverage,
fuzzing and stateful phases; every check, "positive data accepted" included): no server error and no
answer outside the document. Runs on SQLite and on PostgreSQL (which is stricter: NUL bytes, integer
ranges and string lengths reach it otherwise). benchmarks/registry_api_fuzz.py runs the same at ≥ 5 000
calls against a real server.

Schema-valid data may still be refused with a 422 for the three rules no JSON Schema can state, each
described on its operation's 422 in the document: a business licence's check character (GB 32100-2015;
the fields are marked ``format: uscc``), an alert limit's low below its high, and a verification of a
device whose profile has no metrology without its class, max and e. The harness
(:mod:`tests.support.api_fuzz_harness`) makes generated cases keep those rules, so the "positive
data accepted" check runs on every operation instead of being left out.
"""

from __future__ import annotations

from sqlalchemy import Engine

from device_registry.api import create_app
from device_registry.service import BundleDefaults
from tests.support.api_fuzz_harness import run, seed_registry
from tests.support.registry import KEY_SECRET


def test_no_server_error_and_answers_match_the_spec(engine: Engine) -> None:
    seed_registry(engine)
    app = create_app(engine, bundles=BundleDefaults(key_secret=KEY_SECRET))
    tally = run(engine, app=app, max_examples=5, seed=7)
    assert tally.calls >= 1000, tally.summary()  # every operation, every phase
    assert {200, 201, 401, 404, 405, 409, 422} <= set(tally.statuses), tally.summary()
    assert tally.server_errors == 0, tally.summary() + "\n" + tally.failures_text()
    assert not tally.violations, tally.summary() + "\n" + tally.failures_text()
    assert not tally.engine_errors, tally.summary()
