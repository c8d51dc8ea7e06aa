"""Record types of the wire contract, with their fields, units and physical ranges.

A record is a flat JSON object inside an envelope's ``records`` list. Two keys are common to all:
``type`` (a key of :data:`RECORD_TYPES`) and ``ts`` (when the device took it, UTC epoch milliseconds).
A record's identity is ``(device, seq)``; its seq is implicit: the envelope's ``seq`` plus its index.

Units are fixed by the field name suffix so nobody has to guess:
``_mg`` milligrams, ``_g`` grams, ``_fen`` 0.01 yuan, ``_fen_per_kg`` fen per kilogram, ``_ms`` milliseconds,
``_pct`` percent, ``_c`` degrees Celsius, ``_us_cm`` µS/cm, ``_lux`` lux, ``_ppm`` parts per million,
``_deg`` degrees, ``_kmh`` km/h, ``_m`` metres. Money and weights are integers, never binary floats:
0.275 kg × 123.00 yuan/kg is ``amount_fen(275_000, 12_300) == 3383`` (33.83 yuan, rounded half up).

Fields marked ``tag`` become InfluxDB tags (low cardinality, used for grouping); all others are fields.
String tag values may not hold white space, commas, equals signs, quotes or backslashes. A string field with
``choices`` takes only those values. Optional fields (``required=False``) may be left out: a record of an
older device or agent that lacks them stays valid.

A sale's weights follow the load cell (OIML R76): the load cell measures the **gross** load on the pan, goods
and bag, tray or container together; the scale indicates gross G = (raw_counts − zero_counts) / coefficient,
quantised to d, and registers net_mg = G − tare_mg. So ``net_mg + tare_mg`` is the gross indication that the
counts measure, whether the tare was weighed on the pan (``tare_kind`` ``weighed``, T) or keyed or recalled
from a PLU (``preset``, PT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FieldKind = Literal["int", "float", "str", "bool"]

#: Largest integer a record field may hold: fits InfluxDB's int64 and JSON parsers that use doubles.
MAX_SAFE_INT = 2**53 - 1
#: Latest record time, UTC epoch ms (2100-01-01): a point's nanosecond time must fit InfluxDB's int64.
MAX_TS_MS = 4_102_444_800_000


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a record type."""

    kind: FieldKind
    unit: str = ""
    min: float | None = None
    max: float | None = None
    required: bool = True
    tag: bool = False
    max_len: int = 64
    doc: str = ""
    choices: tuple[str, ...] = ()  # a string field limited to these values (empty: any string)


@dataclass(frozen=True, slots=True)
class RecordType:
    """A record type: its InfluxDB measurement and its fields (besides ``type`` and ``ts``)."""

    name: str
    doc: str
    fields: dict[str, FieldSpec]

    @property
    def measurement(self) -> str:
        return self.name


def _f(kind: FieldKind, unit: str = "", lo: float | None = None, hi: float | None = None, **kw: object) -> FieldSpec:
    return FieldSpec(kind, unit, lo, hi, **kw)  # type: ignore[arg-type]


_COUNTS = 2**31 - 1  # load-cell ADC counts are at most 31 bits on the scales we know
#: Values of a sale's ``tare_kind``: a weighed tare (T) or a preset tare (PT), OIML R76 terms.
TARE_KINDS = ("weighed", "preset")

RECORD_TYPES: dict[str, RecordType] = {
    rt.name: rt
    for rt in (
        RecordType(
            "sale",
            "One committed transaction of a price-computing scale (a line on the customer's receipt).",
            {
                "txn": _f("int", "", 0, MAX_SAFE_INT, doc="the scale's own transaction number"),
                "plu": _f("str", "", tag=True, max_len=16, doc="commodity code (PLU) keyed by the vendor"),
                "net_mg": _f(
                    "int",
                    "mg",
                    -(10**10),
                    10**10,
                    doc="net weight registered (bounded by 10 t, not by the scale's Max: a weight beyond Max + 9 e is"
                    " evidence of a rescaled scale, stored and flagged by the cloud)",
                ),
                "tare_mg": _f(
                    "int", "mg", 0, 10**8, doc="tare subtracted: net_mg + tare_mg is the gross load the counts measure"
                ),
                "tare_gross_mg": _f(
                    "int",
                    "mg",
                    -(10**8),
                    10**8,
                    required=False,
                    doc="gross indication when the tare was taken or keyed (a weighed tare: the container's"
                    " gross; a preset tare keyed with the pan empty: about 0)",
                ),
                "unit_price_fen_per_kg": _f("int", "fen/kg", 0, 10**8, doc="unit price, per kilogram"),
                "amount_fen": _f("int", "fen", -(10**10), 10**10, doc="price charged"),
                "stable": _f("bool", doc="the stable flag was set when the weight was registered"),
                "stable_ms": _f("int", "ms", 0, 10**7, doc="how long the reading had been stable at commit"),
                "raw_counts": _f("int", "counts", 0, _COUNTS, doc="load-cell ADC counts at commit"),
                "zero_counts": _f("int", "counts", 0, _COUNTS, doc="ADC counts of the current zero"),
                "calibration_events": _f("int", "", 0, MAX_SAFE_INT, doc="non-resettable calibration counter"),
                "configuration_events": _f("int", "", 0, MAX_SAFE_INT, doc="non-resettable configuration counter"),
                "tare_kind": _f(
                    "str",
                    "",
                    required=False,
                    tag=True,
                    max_len=8,
                    choices=TARE_KINDS,
                    doc="how the tare was set: weighed = the empty container tared on the pan (T); preset = a"
                    " keyed or PLU-recalled tare value (PT); absent when there is no tare",
                ),
                "empty_counts": _f(
                    "int",
                    "counts",
                    0,
                    _COUNTS,
                    required=False,
                    doc="load-cell ADC counts with the pan empty just before this sale's goods (and container)"
                    " went on: zero_counts within ±0.25 e on an honest scale",
                ),
                "zero_set_events": _f(
                    "int",
                    "",
                    0,
                    MAX_SAFE_INT,
                    required=False,
                    doc="the scale's counter of zero-setting operations (ZERO key, host zero command, power-on"
                    " zero); goes up by one at each, not sealed",
                ),
            },
        ),
        RecordType(
            "reweigh",
            "A customer's re-weigh at the market's fair scale (公平秤) of goods bought at a stall; sent by the fair "
            "scale.",
            {
                "txn": _f("int", "", 0, MAX_SAFE_INT, doc="the fair scale's own re-weigh number"),
                "stall_device": _f("str", "", tag=True, max_len=64, doc="device id of the stall's scale"),
                "sale_txn": _f("int", "", 0, MAX_SAFE_INT, required=False, doc="the sale's txn, if the receipt has it"),
                "plu": _f("str", "", tag=True, max_len=16, required=False, doc="commodity code"),
                "claimed_mg": _f("int", "mg", 0, 10**9, doc="net weight on the stall's receipt"),
                "net_mg": _f(
                    "int",
                    "mg",
                    0,
                    10**8,
                    doc="net weight on the fair scale: its gross reading of the goods as sold (in their bag or"
                    " tray) less the receipt's tare (claimed_tare_mg) when the receipt has one",
                ),
                "claimed_tare_mg": _f(
                    "int",
                    "mg",
                    0,
                    10**8,
                    required=False,
                    doc="tare on the stall's receipt (0: none); claimed_mg + claimed_tare_mg is the stall's gross",
                ),
            },
        ),
        RecordType(
            "check_weighing",
            "A check weighing of a stall's scale with a known test weight, by an inspector or technician.",
            {
                "scale_device": _f("str", "", tag=True, max_len=64, doc="device id of the scale checked"),
                "reference_mg": _f("int", "mg", 0, 10**8, doc="conventional mass of the test weight"),
                "indicated_mg": _f("int", "mg", -(10**8), 10**8, doc="what the scale showed"),
                "inspector": _f("str", "", max_len=32, required=False),
            },
        ),
        RecordType(
            "weighing",
            "A reading of a weighing indicator without price computation (e.g. Toledo continuous output).",
            {
                "net_mg": _f("int", "mg", -(10**9), 10**9, doc="displayed (net) weight"),
                "tare_mg": _f("int", "mg", 0, 10**9, doc="tare subtracted"),
                "stable": _f("bool", doc="no motion flag at the time of the reading"),
            },
        ),
        RecordType(
            "scale_state",
            "A scale's metrological identity and seals, sent at start and whenever one of them changes.",
            {
                "accuracy_class": _f("str", "", tag=True, max_len=4, doc="OIML class: I, II, III or IIII"),
                "max_g": _f("int", "g", 1, 10**7, doc="maximum capacity Max"),
                "min_g": _f("int", "g", 0, 10**7, doc="minimum capacity Min"),
                "e_mg": _f("int", "mg", 1, 10**7, doc="verification scale interval e"),
                "d_mg": _f("int", "mg", 1, 10**7, doc="actual scale interval d"),
                "coefficient": _f("float", "counts/kg", 0, 10**9, doc="calibrated counts per kilogram"),
                "zero_counts": _f("int", "counts", 0, _COUNTS, doc="ADC counts of the current zero"),
                "calibration_events": _f("int", "", 0, MAX_SAFE_INT),
                "configuration_events": _f("int", "", 0, MAX_SAFE_INT),
                "software_id": _f("str", "", max_len=64, doc="legally relevant software identification"),
            },
        ),
        RecordType(
            "soil",
            "One reading of a soil sensor at a planting base; a faulty channel is left out (see sensor_fault).",
            {
                "moisture_pct": _f("float", "%", 0, 100, required=False),
                "temperature_c": _f("float", "°C", -40, 80, required=False),
                "conductivity_us_cm": _f("int", "µS/cm", 0, 20_000, required=False),
                "ph": _f("float", "pH", 0, 14, required=False),
            },
        ),
        RecordType(
            "air",
            "One reading of an air sensor at a planting base; a faulty channel is left out (see sensor_fault).",
            {
                "temperature_c": _f("float", "°C", -40, 80, required=False),
                "humidity_pct": _f("float", "%RH", 0, 100, required=False),
                "light_lux": _f("int", "lx", 0, 200_000, required=False),
                "co2_ppm": _f("int", "ppm", 0, 10_000, required=False),
            },
        ),
        RecordType(
            "sensor_fault",
            "A sensor channel that gave no usable reading: a timeout, an out-of-range or a stuck value.",
            {
                "channel": _f("str", "", tag=True, max_len=32, doc="the field the reading was for; all: no answer"),
                "fault": _f("str", "", tag=True, max_len=16, doc="timeout | out_of_range | stuck"),
                "raw": _f("float", required=False, doc="the offending value, when there was one"),
                "detail": _f("str", required=False, max_len=200),
            },
        ),
        RecordType(
            "gps",
            "A valid fix of a rapid-test vehicle's GPS receiver; ts is GPS time.",
            {
                "lat_deg": _f("float", "°", -90, 90),
                "lon_deg": _f("float", "°", -180, 180),
                "speed_kmh": _f("float", "km/h", 0, 400, required=False),
                "course_deg": _f("float", "°", 0, 360, required=False),
                "fix_quality": _f("int", "", 0, 9, required=False),
                "satellites": _f("int", "", 0, 99, required=False),
                "hdop": _f("float", "", 0, 100, required=False),
                "altitude_m": _f("float", "m", -1000, 10_000, required=False),
            },
        ),
        RecordType(
            "rapid_test",
            "One channel of an enzyme-inhibition pesticide rapid test (GB/T 5009.199-2003).",
            {
                "channel": _f("int", "", 1, 64, tag=True),
                "sample_id": _f("str", "", max_len=32),
                "sample_name": _f("str", "", max_len=64),
                "sample_category": _f("str", "", tag=True, max_len=32),
                "source_id": _f(
                    "str",
                    "",
                    max_len=64,
                    doc="device id of the stall's scale or the base's gateway the sample came from",
                ),
                "delta_a0": _f("float", "abs", -5, 5, doc="control absorbance change over 3 min at 412 nm"),
                "delta_at": _f("float", "abs", -5, 5, doc="sample absorbance change over 3 min at 412 nm"),
                "inhibition_pct": _f("float", "%", -100, 200),
                "result": _f("str", "", tag=True, max_len=16, doc="negative | suspect | positive | invalid"),
                "retest": _f("int", "", 0, 99),
                "reagent_lot": _f("str", "", max_len=32),
                "reagent_expiry": _f("str", "", max_len=10, doc="YYYY-MM-DD"),
                "temperature_c": _f("float", "°C", -10, 60),
                "operator": _f("str", "", max_len=32),
            },
        ),
        RecordType(
            "raw_evidence",
            "What a device sent that the agent could not make a valid record of (a transaction with fields out of"
            " range or unreadable): the exact bytes and why, uploaded so that no evidence stays at the edge.",
            {
                "source": _f("str", "", max_len=80, doc="the agent's source: profile@port"),
                "record_type": _f("str", "", tag=True, max_len=32, doc="the record type it should have become"),
                "reason": _f("str", "", max_len=200, doc="why it is not a valid record"),
                "txn": _f("int", "", 0, MAX_SAFE_INT, required=False, doc="the device's own number for it, if known"),
                "bytes_b64": _f("str", "", max_len=4_096, doc="the bytes the device sent, base64"),
            },
        ),
    )
}

#: Record types every device may send whatever its profile declares.
UNIVERSAL_RECORDS = frozenset({"raw_evidence"})

#: Tags every point carries besides the record's own: the device, then registry enrichment.
COMMON_TAGS = ("device",)


def amount_fen(net_mg: int, unit_price_fen_per_kg: int) -> int:
    """Price of ``net_mg`` at ``unit_price_fen_per_kg``, rounded half up to the fen, in integers.

    >>> amount_fen(275_000, 12_300)   # 0.275 kg × 123.00 yuan/kg = 33.825 → 33.83 yuan
    3383
    """
    product = net_mg * unit_price_fen_per_kg  # fen × 10⁻⁶
    sign = -1 if product < 0 else 1
    return sign * ((abs(product) + 500_000) // 1_000_000)


#: A valid sale: the contract's price vector, 0.275 kg × 123.00 yuan/kg = 33.83 yuan, on a scale calibrated
#: at 20 000 counts/kg. For examples, tests and benchmarks.
EXAMPLE_SALE: dict[str, object] = {
    "type": "sale",
    "ts": 1_764_000_000_000,
    "txn": 1,
    "plu": "1001",
    "net_mg": 275_000,
    "tare_mg": 0,
    "unit_price_fen_per_kg": 12_300,
    "amount_fen": 3383,
    "stable": True,
    "stable_ms": 800,
    "raw_counts": 125_500,
    "zero_counts": 120_000,
    "calibration_events": 3,
    "configuration_events": 7,
}

#: A valid re-weigh at a fair scale of goods bought at ``scale-0002`` (a receipt of 500 g found 480 g).
EXAMPLE_REWEIGH: dict[str, object] = {
    "type": "reweigh",
    "ts": 1_764_000_000_000,
    "txn": 1,
    "stall_device": "scale-0002",
    "claimed_mg": 500_000,
    "net_mg": 480_000,
}

#: A valid positive pesticide rapid test (80 % inhibition) of a sample from the stall of ``scale-0001``.
EXAMPLE_RAPID_TEST: dict[str, object] = {
    "type": "rapid_test",
    "ts": 1_764_000_000_000,
    "channel": 1,
    "sample_id": "S-1",
    "sample_name": "spinach",
    "sample_category": "leafy",
    "source_id": "scale-0001",
    "delta_a0": 0.5,
    "delta_at": 0.1,
    "inhibition_pct": 80.0,
    "result": "positive",
    "retest": 0,
    "reagent_lot": "L1",
    "reagent_expiry": "2027-01-01",
    "temperature_c": 25.0,
    "operator": "x",
}
