"""Every message is isolated: whatever a device signs and sends, each message ends as stored records or as
its own dead letter, never as an exception, and the next valid sale is stored (real influxd)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anti_cheat import Engine
from cloud_ingest import DeviceFile, InfluxClient, Pipeline
from cloud_ingest.senders import SenderRules
from cloud_ingest.sequences import SequenceBook
from firmware_sim.hostile import HostilePayloads, sign_text

KEY, OTHER_KEY = b"k" * 32, b"o" * 32
TOPIC = "zhijian/v1/scale-0001/data"
FILES = DeviceFile(
    {
        "scale-0001": {"key": KEY.hex(), "profile": "zj-pcs-30", "tags": {"market": "m1"}},
        "scale-0002": {"key": OTHER_KEY.hex(), "profile": "zj-pcs-30", "tags": {"market": "m1"}},
    }
)


def pipeline(influx: InfluxClient) -> Pipeline:
    return Pipeline(
        key_for=FILES.key_for,
        engine=Engine(FILES.facts),
        store=influx,
        tags_for=FILES.tags_for,
        sequences=SequenceBook(window=50, max_ahead=1_000),
        senders=SenderRules(profile_for=FILES.profile_for, tags_for=FILES.tags_for, known=FILES.is_known),
    )


class Honest:
    """The other scale of the market, sending one valid sale after each hostile batch."""

    def __init__(self) -> None:
        self.payloads = HostilePayloads("scale-0002", OTHER_KEY)
        self.sent = 0

    def next(self) -> tuple[str, bytes]:
        self.sent += 1
        return "zhijian/v1/scale-0002/data", self.payloads.valid()


def run_batch(pipe: Pipeline, batch: list[tuple[str, bytes]]) -> None:
    """The invariant: process never raises; each message is accepted or rejected, exactly once."""
    rejected_before = sum(pipe.rejected.values())
    prepared = pipe.prepare(batch)
    pipe.commit(prepared)
    rejected = sum(pipe.rejected.values()) - rejected_before
    assert len(prepared.accepted) + rejected == len(batch)


def honest_sales(influx: InfluxClient) -> int:
    series = influx.query("SELECT count(amount_fen) FROM sale WHERE device='scale-0002'")
    return int(series[0]["values"][0][1]) if series else 0


def test_seeded_hostile_streams_never_escape_a_message(influx: InfluxClient) -> None:
    """3 000 payloads of every kind of mutation, in batches of up to 50, each batch ending with a valid sale."""
    pipe, honest = pipeline(influx), Honest()
    hostile = iter(HostilePayloads("scale-0001", KEY, seed=7))
    kinds: dict[str, int] = {}
    for n in range(60):
        batch = []
        for _ in range(1 + n % 50):
            kind, raw = next(hostile)
            kinds[kind] = kinds.get(kind, 0) + 1
            batch.append((TOPIC, raw))
        batch.append(honest.next())
        run_batch(pipe, batch)
    assert pipe.surprises == {}, pipe.surprises  # nothing reached code that could not judge it
    assert honest_sales(influx) == honest.sent
    assert len(kinds) == 5 and sum(kinds.values()) > 1_000
    reasons = set(pipe.rejected)
    assert {"bad_json", "bad_record", "malformed_json", "bad_envelope", "bad_tag", "seq_out_of_range"} <= reasons


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(alphabet=st.characters(codec=None)),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@given(data=st.data())
@settings(
    max_examples=150,
    database=None,
    suppress_health_check=[*settings.default.suppress_health_check, HealthCheck.function_scoped_fixture],
)
def test_any_signed_bytes_or_json_end_as_records_or_dead_letters(influx: InfluxClient, data: Any) -> None:
    pipe, honest = pipeline(influx), Honest()
    batch: list[tuple[str, bytes]] = []
    for _ in range(data.draw(st.integers(1, 4))):
        if data.draw(st.booleans()):
            raw = sign_text(data.draw(st.binary(max_size=300)), KEY)
        else:
            doc = json.loads(
                HostilePayloads("scale-0001", KEY).valid(seq=data.draw(st.integers(0, 2**53)))[:-74] + b"}"
            )
            target = doc if data.draw(st.booleans()) else doc["records"][0]
            target[data.draw(st.sampled_from([*target, "x"]))] = data.draw(json_values)
            raw = sign_text(json.dumps(doc, separators=(",", ":")).encode(), KEY)
        batch.append((TOPIC, raw))
    batch.append(honest.next())
    run_batch(pipe, batch)
    assert pipe.surprises == {}, pipe.surprises
