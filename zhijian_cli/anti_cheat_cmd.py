"""``zhijian anti-cheat score``: run the anti-cheating engine over a file of transactions."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from anti_cheat import RULES, Engine, ScaleFacts, Transactions
from anti_cheat.columns import INPUT_BOUNDS, INTEGER_INPUTS, KINDS, REWEIGH, TARE_KINDS
from anti_cheat.facts import RegistryDocument, Verification

app = typer.Typer(
    rich_markup_mode="markdown", help="Score scale transactions with the anti-cheating engine.", no_args_is_help=True
)
console = Console(stderr=True)
CHUNK_ROWS = 100_000
SEAL_HINT_FLAGS = 10  # a scale with this many `counters` flags gets a hint about missing verifications
_INT_COLUMNS = INTEGER_INPUTS


class InputError(Exception):
    """The transactions or registry file cannot be used."""


def _field_errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])


def load_registry(path: Path, verifications: Path | None = None) -> ScaleFacts:
    """Scale facts from a :class:`anti_cheat.facts.RegistryDocument` (``scales``, optional
    ``verifications`` history, ``commodity_median``) or an ingest devices file (``devices``), plus an
    optional verifications file (JSONL or CSV, one verification per line). A malformed file is refused
    with the field named."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a usable registry file: {exc}") from exc
    if not isinstance(doc, dict):
        raise InputError(f"{path}: not a usable registry file: expected a JSON object")
    try:
        if "devices" in doc and "scales" not in doc:
            from cloud_ingest.registry_file import scale_fact

            devices = doc["devices"]
            if not isinstance(devices, dict):
                raise InputError(f"{path}: not a usable devices file: devices must be an object of device ids")
            scales, unverified = {}, {}
            for d, v in devices.items():
                if isinstance(v, dict) and v.get("unverified") is not None:
                    unverified[d] = v["unverified"]
                if isinstance(v, dict) and "scale" in v:
                    try:
                        scales[d] = scale_fact(v)
                    except ValidationError as exc:
                        raise InputError(f"{path}: devices.{d}.scale: {_field_errors(exc)}") from exc
            doc = {"scales": scales, "commodity_median": doc.get("commodity_median") or {}, "unverified": unverified}
        parsed = RegistryDocument.model_validate(doc)
    except ValidationError as exc:
        raise InputError(f"{path}: not a usable registry file: {_field_errors(exc)}") from exc
    except (AttributeError, TypeError) as exc:
        raise InputError(f"{path}: not a usable registry file: {exc}") from exc
    history = list(parsed.verifications)
    if verifications is not None:
        history += _read_verifications(verifications)
    facts = ScaleFacts.from_mapping(parsed.scales, parsed.commodity_median, history)
    facts.set_unverified_from(parsed.unverified)  # the rule unverified_in_use
    return facts


def _read_verifications(path: Path) -> list[Verification]:
    out = []
    try:
        with path.open(encoding="utf-8") as f:
            if path.suffix.lower() == ".csv":
                rows = (
                    (n, {k: v for k, v in r.items() if v not in ("", None)}) for n, r in enumerate(csv.DictReader(f), 2)
                )
            else:
                rows = ((n, json.loads(line)) for n, line in enumerate(f, 1) if line.strip())
            for n, row in rows:
                try:
                    out.append(Verification.model_validate(row, strict=False))
                except ValidationError as exc:
                    raise InputError(f"{path}:{n}: not a verification: {_field_errors(exc)}") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a usable verifications file: {exc}") from exc
    return out


def _integer(key: str, value: Any, where: str) -> int:
    """An integer input within its range: JSON integers (or integral numbers), CSV digits; not a bool."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    if number is None:
        raise InputError(f"{where}: {key}={value!r:.40} is not an integer")
    lo, hi = INPUT_BOUNDS[key]
    if not lo <= number <= hi:
        raise InputError(f"{where}: {key}={number} is out of range [{lo}, {hi}]")
    return number


def _typed(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise InputError(f"{where}: a row must be an object with the input columns, not {type(row).__name__}")
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key is None:
            raise InputError(f"{where}: more fields than the header has")
        if value in ("", None):
            continue
        if key in _INT_COLUMNS:
            out[key] = _integer(key, value, where)
        elif key == "stable":
            out[key] = value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "t", "yes")
        else:
            out[key] = value
    if "device" not in out:
        raise InputError(f"{where}: no device")
    if "ts" not in out:
        raise InputError(f"{where}: no ts (UTC milliseconds)")
    if out.get("kind", "sale") not in KINDS:
        raise InputError(f"{where}: kind={out['kind']!r}: expected one of {', '.join(KINDS)}")
    if out.get("tare_kind", "weighed") not in TARE_KINDS:
        raise InputError(f"{where}: tare_kind={out['tare_kind']!r}: expected weighed or preset")
    return out


def read_chunks(path: Path, progress: Progress, task: Any) -> Iterator[list[dict[str, Any]]]:
    """Rows in chunks of :data:`CHUNK_ROWS`, advancing the progress bar by bytes (or row groups) read."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise InputError("reading Parquet needs pyarrow: pip install 'zhijian[parquet]'") from exc
        reader = pq.ParquetFile(path)
        progress.update(task, total=reader.metadata.num_rows)
        for n, batch in enumerate(reader.iter_batches(batch_size=CHUNK_ROWS)):
            rows = batch.to_pylist()
            yield [_typed(r, f"{path}: batch {n}") for r in rows]
            progress.advance(task, len(rows))
        return
    with path.open("rb") as raw:
        progress.update(task, total=path.stat().st_size)
        chunk: list[dict[str, Any]] = []
        for row in _csv_rows(raw, path) if suffix == ".csv" else _jsonl_rows(raw, path):
            chunk.append(row)
            if len(chunk) == CHUNK_ROWS:
                progress.update(task, completed=raw.tell())
                yield chunk
                chunk = []
        progress.update(task, completed=raw.tell())
        if chunk:
            yield chunk


def _csv_rows(raw: IO[bytes], path: Path) -> Iterator[dict[str, Any]]:
    lines = (line.decode("utf-8-sig" if n == 0 else "utf-8") for n, line in enumerate(raw))  # Excel's BOM
    for n, row in enumerate(csv.DictReader(lines), start=2):
        yield _typed(row, f"{path}:{n}")


def _jsonl_rows(raw: IO[bytes], path: Path) -> Iterator[dict[str, Any]]:
    for n, raw_line in enumerate(raw, start=1):
        line = raw_line.removeprefix(b"\xef\xbb\xbf") if n == 1 else raw_line  # a byte-order mark
        if line.strip():
            try:
                doc = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{path}:{n}: not JSON: {exc}") from exc
            yield _typed(doc, f"{path}:{n}")


@app.command("score")
def score(
    transactions: Annotated[Path, typer.Argument(help="JSONL, CSV or Parquet; columns in docs/anti_cheat.md.")],
    registry: Annotated[
        Path,
        typer.Option(
            help="JSON: each scale's verified facts (`scales`), an optional `verifications` history and"
            " `commodity_median` price priors; or an ingest devices file."
        ),
    ],
    verifications: Annotated[
        Path | None,
        typer.Option(
            help="JSONL or CSV of verifications (device, verified_ms and the facts): each is in force from its"
            " time, so a scale re-verified mid-file is judged against the right one."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write flags here as JSONL (default: standard output).")] = None,
    top: Annotated[int, typer.Option(help="How many scales at risk to list.")] = 20,
) -> None:
    """Score every transaction in arrival order and write one JSON line per flag; print a summary: flags
    by rule, which rules ran (a rule whose columns the input lacks does not run), transactions of scales
    the registry does not know (not judged by the rules that need facts), and the scales at risk."""
    try:
        facts = load_registry(registry, verifications)
    except InputError as exc:
        _error(exc)
        raise typer.Exit(2) from exc
    engine = Engine(facts)
    by_rule: Counter[str] = Counter()
    flagged_devices: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    unknown_fair: Counter[str] = Counter()  # fair scales without facts: their re-weighs use the stall's
    seals: Counter[str] = Counter()  # counters flags per scale: many may mean a re-verification not given
    rows_read = 0
    sink = out.open("w", encoding="utf-8") if out else None
    try:
        with Progress(
            TextColumn("scoring"),
            BarColumn(),
            TextColumn("{task.fields[rows]:,} rows"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("score", rows=0)
            for chunk in read_chunks(transactions, progress, task):
                for i, row in enumerate(chunk):
                    row.setdefault("seq", rows_read + i + 1)  # no seq column: the row's number in the file
                batch = Transactions.from_rows(facts, chunk)
                for flag in engine.score(batch).flags(batch, facts):
                    by_rule[flag.rule] += 1
                    flagged_devices[flag.device] += 1
                    if flag.rule == "counters":
                        seals[flag.device] += 1
                    text = json.dumps(flag.as_dict(), ensure_ascii=False)
                    if sink:
                        sink.write(text + "\n")
                    else:
                        print(text)
                without = facts.latest[batch.scale] == 0
                unknown.update(facts.devices[i] for i in batch.scale[without].tolist())
                fair = (batch.kind == REWEIGH) & (batch.source != batch.scale) & (facts.latest[batch.source] == 0)
                unknown_fair.update(facts.devices[i] for i in batch.source[fair].tolist())
                rows_read += len(chunk)
                progress.update(task, rows=rows_read)
    except (InputError, OSError, ValueError) as exc:
        _error(exc)
        raise typer.Exit(2) from exc
    finally:
        if sink:
            sink.close()
    _summary(engine, rows_read, by_rule, flagged_devices, unknown, top)
    persistent = [d for d, n in seals.most_common() if n >= SEAL_HINT_FLAGS]
    if persistent:
        console.print(
            Text(
                f"{len(persistent):,} scales have {SEAL_HINT_FLAGS} or more sales with sealed counters unlike their"
                f" verification ({', '.join(persistent[:10])}): a broken seal, or a re-verification this run was not"
                " given (--verifications, or a `verifications` list in the registry file)",
                style="yellow",
            )
        )
    if unknown_fair:
        shown = ", ".join(f"{d} ({n:,})" for d, n in unknown_fair.most_common(10))
        console.print(
            Text(
                f"{sum(unknown_fair.values()):,} re-weighs from {len(unknown_fair):,} fair scales not in the registry"
                f" (judged with the stall's e and d): {shown}",
                style="yellow",
            )
        )


def _error(exc: Exception) -> None:
    console.print(Text(str(exc), style="red"))  # as text: brackets in a message are not markup


def _summary(
    engine: Engine, rows: int, by_rule: Counter[str], devices: Counter[str], unknown: Counter[str], top: int
) -> None:
    judged = engine.rules_run()
    table = Table(title=f"{rows:,} transactions, {sum(by_rule.values()):,} flags")
    for col, justify in (("rule", "left"), ("rows judged", "right"), ("flags", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for rule in RULES:
        if judged[rule.id]:
            table.add_row(rule.id, f"{judged[rule.id]:,}", f"{by_rule[rule.id]:,}")
    console.print(table)
    idle = [r for r in RULES if not judged[r.id]]
    if idle:
        console.print("rules that did not run (no row had their columns):", highlight=False)
        for r in idle:
            console.print(Text(f"  {r.id}: needs {', '.join(r.needs)}"))
    if unknown:
        shown = ", ".join(f"{d} ({n:,})" for d, n in unknown.most_common(10))
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        console.print(
            Text(
                f"{sum(unknown.values()):,} transactions of {len(unknown):,} scales not in the registry (judged"
                f" only by the rules that need no facts): {shown}{more}",
                style="yellow",
            )
        )
    risky = Table(title="scales at risk")
    for col in ("scale", "risk", "flags", "rules"):
        risky.add_column(col)
    for device, n in devices.most_common(top):
        status = engine.status(device)
        risky.add_row(device, status["risk"], f"{n:,}", ", ".join(sorted(status["flags_by_rule"])))
    console.print(risky)
