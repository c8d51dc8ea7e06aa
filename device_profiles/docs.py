"""The record tables of docs/contract.md, generated from :data:`RECORD_TYPES` so the doc cannot drift.

``python -m device_profiles.docs`` prints them; a test checks that the doc holds exactly this text.
"""

from __future__ import annotations

from .records import MAX_SAFE_INT, RECORD_TYPES


def _number(x: float) -> str:
    if x == MAX_SAFE_INT:
        return "2⁵³−1"
    if x == 2**31 - 1:
        return "2³¹−1"
    return f"{int(x):,}".replace(",", " ") if float(x).is_integer() else f"{x:g}"


def record_tables() -> str:
    """Markdown: one section per record type with its fields, units, ranges and InfluxDB role."""
    out: list[str] = []
    for rt in RECORD_TYPES.values():
        out += [f"### `{rt.name}`", "", rt.doc, ""]
        out += ["| field | type | unit | range | required | in InfluxDB | meaning |", "|---|---|---|---|---|---|---|"]
        for name, s in rt.fields.items():
            if s.choices:
                span = " or ".join(f"`{c}`" for c in s.choices)
            elif s.min is not None and s.max is not None:
                span = f"{_number(s.min)} … {_number(s.max)}"
            else:
                span = f"≤ {s.max_len} chars" if s.kind == "str" else ""
            out.append(
                f"| `{name}` | {s.kind} | {s.unit} | {span} | {'yes' if s.required else 'no'} "
                f"| {'tag' if s.tag else 'field'} | {s.doc} |"
            )
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(record_tables())
