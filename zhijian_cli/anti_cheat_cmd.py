"""``zhijian anti-cheat score``: run the anti-cheating engine over a file of transactions."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from anti_cheat import Engine, ScaleFacts, Transactions
from anti_cheat.columns import INTEGER_INPUTS

app = typer.Typer(
    rich_markup_mode="markdown", help="Score scale transactions with the anti-cheating engine.", no_args_is_help=True
)
console = Console(stderr=True)
CHUNK_ROWS = 100_000
_INT_COLUMNS = INTEGER_INPUTS


class InputError(Exception):
    """The transactions or registry file cannot be used."""


def load_registry(path: Path) -> ScaleFacts:
    """Scale facts from ``{"scales": {id: {...}}, "commodity_median": {plu: fen}}`` or a devices file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        scales = doc.get("scales") or {d: v["scale"] for d, v in doc.get("devices", {}).items() if "scale" in v}
        facts = ScaleFacts.from_mapping(scales, doc.get("commodity_median"))
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"{path}: not a usable registry file: {exc}") from exc
    return facts


def _typed(row: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value in ("", None):
            continue
        if key in _INT_COLUMNS:
            try:
                out[key] = int(value)
            except (TypeError, ValueError) as exc:
                raise InputError(f"{where}: {key}={value!r} is not an integer") from exc
        elif key == "stable":
            out[key] = value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "t", "yes")
        else:
            out[key] = value
    if "device" not in out:
        raise InputError(f"{where}: no device")
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
    lines = (line.decode("utf-8") for line in raw)
    for n, row in enumerate(csv.DictReader(lines), start=2):
        yield _typed(row, f"{path}:{n}")


def _jsonl_rows(raw: IO[bytes], path: Path) -> Iterator[dict[str, Any]]:
    for n, line in enumerate(raw, start=1):
        if line.strip():
            try:
                doc = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{path}:{n}: not JSON: {exc}") from exc
            yield _typed(doc, f"{path}:{n}")


@app.command("score")
def score(
    transactions: Annotated[Path, typer.Argument(help="JSONL, CSV or Parquet; columns in docs/anti_cheat.md.")],
    registry: Annotated[Path, typer.Option(help="JSON with each scale's verified facts and commodity medians.")],
    out: Annotated[Path | None, typer.Option(help="Write flags here as JSONL (default: standard output).")] = None,
    top: Annotated[int, typer.Option(help="How many scales at risk to list.")] = 20,
) -> None:
    """Score every transaction in arrival order and write one JSON line per flag; print a summary."""
    try:
        facts = load_registry(registry)
    except InputError as exc:
        console.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(2) from exc
    engine = Engine(facts)
    by_rule: Counter[str] = Counter()
    flagged_devices: Counter[str] = Counter()
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
                batch = Transactions.from_rows(facts, chunk)
                for flag in engine.score(batch).flags(batch, facts):
                    by_rule[flag.rule] += 1
                    flagged_devices[flag.device] += 1
                    text = json.dumps(flag.as_dict(), ensure_ascii=False)
                    if sink:
                        sink.write(text + "\n")
                    else:
                        print(text)
                rows_read += len(chunk)
                progress.update(task, rows=rows_read)
    except (InputError, OSError) as exc:
        console.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(2) from exc
    finally:
        if sink:
            sink.close()
    _summary(engine, rows_read, by_rule, flagged_devices, top)


def _summary(engine: Engine, rows: int, by_rule: Counter[str], devices: Counter[str], top: int) -> None:
    table = Table(title=f"{rows:,} transactions, {sum(by_rule.values()):,} flags")
    table.add_column("rule")
    table.add_column("flags", justify="right")
    for rule, n in by_rule.most_common():
        table.add_row(rule, f"{n:,}")
    console.print(table)
    risky = Table(title="scales at risk")
    for col in ("scale", "risk", "flags", "rules"):
        risky.add_column(col)
    for device, n in devices.most_common(top):
        status = engine.status(device)
        risky.add_row(device, status["risk"], f"{n:,}", ", ".join(sorted(status["flags_by_rule"])))
    console.print(risky)
