"""``zhijian ingest dead-letters list|show|replay``: read the ingest's dead letters, and publish them again
after a fix so the running ingest judges them anew with every check (:mod:`.dead_letter_replay`).

Everything here may run while the ingest owns the store: reads go through
:class:`cloud_ingest.dead_letters.DeadLetterFile`, and a replay only marks letters (``replayed_at``)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .cli_common import JsonOption, console, emit, err_console
from .registry_client import CliError

if TYPE_CHECKING:  # imported when a command runs: keeps `zhijian --help` quick
    from cloud_ingest import IngestSettings
    from cloud_ingest.dead_letters import DeadLetter, DeadLetterFile, LetterQuery

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Inspect the ingest's dead letters (every refused payload, bytes and all) and replay them after a fix. "
    "Safe while `zhijian ingest run` is running.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="The ingest's settings file (ZHIJIAN_*=value lines), as for `zhijian ingest run`."
    ),
]
StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="The file holding the dead letters; default: the ingest's ZHIJIAN_STATE_PATH "
        "(or ZHIJIAN_DEAD_LETTER_PATH).",
    ),
]
DeviceOption = Annotated[str | None, typer.Option(help="Only this device's letters.")]
ReasonOption = Annotated[str | None, typer.Option(help="Only letters refused for this reason (e.g. `bad_tag`).")]
SinceOption = Annotated[
    str | None, typer.Option(help="Only letters refused at or after this time: ISO 8601, UTC unless it says.")
]
UntilOption = Annotated[str | None, typer.Option(help="Only letters refused before this time (as --since).")]
DaysOption = Annotated[float | None, typer.Option(min=0, help="Only letters of the last DAYS days (not with --since).")]
HEX_DUMP_MAX = 64 * 1024  # `show` dumps this much; --raw gives everything


@contextmanager
def _errors() -> Iterator[None]:
    """Our errors become one red line and exit status 1."""
    from cloud_ingest import IngestError

    try:
        yield
    except (CliError, IngestError, OSError) as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from exc


def _settings(config: Path | None) -> IngestSettings:
    from cloud_ingest import IngestSettings

    if config is not None and not config.is_file():
        raise CliError(f"{config}: no such settings file")
    try:
        return IngestSettings(_env_file=config) if config else IngestSettings()
    except ValueError as exc:
        raise CliError(f"settings: {exc}") from exc


def _letters_path(settings: IngestSettings) -> Path:
    """Where the ingest keeps its dead letters: their own file if set, else its state file."""
    return settings.dead_letter_path or settings.state_path


def _open(config: Path | None, store: Path | None) -> DeadLetterFile:
    from cloud_ingest.dead_letters import DeadLetterFile

    return DeadLetterFile(store if store is not None else _letters_path(_settings(config)))


def _ms(text: str, option: str) -> int:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise CliError(
            f"{option} {text!r}: want an ISO 8601 date or time, e.g. 2025-11-24 or 2025-11-24T08:00"
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1000)


def _query(
    *,
    ids: tuple[int, ...] = (),
    device: str | None,
    reason: str | None,
    since: str | None,
    until: str | None,
    days: float | None,
    limit: int | None = None,
) -> LetterQuery:
    from cloud_ingest.dead_letters import LetterQuery

    if days is not None and since is not None:
        raise CliError("give --since or --days, not both")
    since_ms = _ms(since, "--since") if since else None
    if days is not None:
        since_ms = int((time.time() - days * 86_400) * 1000)
    return LetterQuery(
        ids=ids,
        device=device,
        reason=reason,
        since_ms=since_ms,
        until_ms=_ms(until, "--until") if until else None,
        limit=limit,
    )


def _utc(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _doc(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "at": _utc(letter.at_ms),
        "at_ms": letter.at_ms,
        "device": letter.device,
        "topic": letter.topic,
        "reason": letter.reason,
        "detail": letter.detail,
        "payload_bytes": len(letter.payload),
        "size": letter.size,
        "replayed_at": _utc(letter.replayed_at_ms),
        "replayable": letter.replayable,
        "times": letter.times,
        "last_at": _utc(letter.last_at_ms),
    }


@app.command("list")
def list_letters(
    device: DeviceOption = None,
    reason: ReasonOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    days: DaysOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many (oldest first); counts cover all.")] = 200,
    config: ConfigOption = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """List dead letters, oldest first: id, time (UTC), device, reason, detail, payload size, how many times
    the same refusal came (a redelivery or one payload sent over and over is counted on the letter kept),
    when replayed; then how many letters each reason holds among all that match the filters.

    Filters combine: `zhijian ingest dead-letters list --device scale-0001 --reason bad_tag --days 2`.
    The reasons are in docs/contract.md ("Rejections")."""
    with _errors():
        query = _query(device=device, reason=reason, since=since, until=until, days=days, limit=limit)
        with _open(config, store) as letters:
            shown = [_doc(letter) for letter in letters.letters(query)]
            counts = letters.counts(query)
    doc = {"letters": shown, "counts": dict(counts.most_common()), "total": sum(counts.values())}
    emit(doc, as_json, _render_list)


def _render_list(doc: dict[str, Any]) -> None:
    table = Table(title="dead letters")
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("time (UTC)", no_wrap=True)  # what is looked for stays whole; the detail folds
    table.add_column("device", no_wrap=True)
    table.add_column("reason", no_wrap=True)
    table.add_column("detail", overflow="fold", min_width=16, max_width=60)
    table.add_column("bytes", justify="right", no_wrap=True)
    table.add_column("times", justify="right", no_wrap=True)  # the same refusal again is counted, not kept twice
    table.add_column("replayed (UTC)", min_width=10)
    for row in doc["letters"]:
        detail = row["detail"] if len(row["detail"]) <= 120 else row["detail"][:119] + "…"
        table.add_row(
            str(row["id"]),
            row["at"][:19].replace("T", " "),  # to the second here; --json and `show` have milliseconds
            Text(row["device"]),  # Text: what a device sent is shown, never read as markup
            Text(row["reason"]),
            Text(detail),
            f"{row['payload_bytes']:,}",
            f"{row['times']:,}",
            (row["replayed_at"] or "")[:19].replace("T", " "),
        )
    console.print(table)
    per_reason = ", ".join(f"{reason} {n:,}" for reason, n in doc["counts"].items()) or "none"
    console.print(
        f"{doc['total']:,} letters match (showing {len(doc['letters']):,}); per reason: {escape(per_reason)}",
        highlight=False,
    )


@app.command("show")
def show(
    letter_id: Annotated[int, typer.Argument(metavar="ID", help="The letter's id (from `list`).")],
    raw: Annotated[
        bool, typer.Option("--raw", help="Write the exact refused bytes to standard output, nothing else.")
    ] = False,
    config: ConfigOption = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Everything about one dead letter: when, topic, device, reason, detail, size, whether replayed, and
    its payload, pretty-printed when it is JSON, else as a hex dump.

    `--raw` writes the bytes as they were refused, for a file or another tool:
    `zhijian ingest dead-letters show 42 --raw > letter-42.bin`."""
    with _errors():
        with _open(config, store) as letters:
            letter = letters.letter(letter_id)
        if letter is None:
            raise CliError(f"no dead letter {letter_id}")
    if raw:
        out = typer.get_binary_stream("stdout")
        out.write(letter.payload)
        out.flush()
        return
    doc = _doc(letter) | {"payload_hex": letter.payload.hex()}
    text = _text(letter.payload)
    if text is not None:
        doc["payload_text"] = text
    emit(doc, as_json, lambda d: _render_letter(d, letter.payload))


def _text(payload: bytes) -> str | None:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _pretty_json(payload: bytes) -> str | None:
    """The payload as indented JSON if it is a JSON document we can read back, else None."""
    try:
        doc = json.loads(payload)
        text = json.dumps(doc, ensure_ascii=False, indent=2)
    except (ValueError, RecursionError):
        return None
    return text.encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate shows as its escape


def _hex_dump(payload: bytes) -> str:
    lines = []
    for offset in range(0, min(len(payload), HEX_DUMP_MAX), 16):
        chunk = payload[offset : offset + 16]
        shown = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{offset:08x}  {chunk[:8].hex(' '):<23}  {chunk[8:].hex(' '):<23}  |{shown}|")
    if len(payload) > HEX_DUMP_MAX:
        lines.append(f"… {len(payload) - HEX_DUMP_MAX:,} more bytes (--raw for all)")
    return "\n".join(lines)


def _render_letter(doc: dict[str, Any], payload: bytes) -> None:
    table = Table(show_header=False, title=f"dead letter {doc['id']}")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name in (
        "at",
        "topic",
        "device",
        "reason",
        "detail",
        "payload_bytes",
        "size",
        "times",
        "last_at",
        "replayed_at",
    ):
        table.add_row(name, Text("" if doc[name] is None else str(doc[name])))  # Text: a device's bytes, no markup
    if not doc["replayable"]:
        table.add_row("replayable", "no: not a device data topic")
    console.print(table)
    pretty = _pretty_json(payload)
    if pretty is not None:
        console.print("payload (JSON, re-indented; --raw for the exact bytes):")
        console.print(pretty, markup=False, highlight=False)
    else:
        console.print(f"payload ({len(payload):,} bytes, not JSON):")
        console.print(_hex_dump(payload), markup=False, highlight=False)


@app.command("replay")
def replay(
    ids: Annotated[list[int] | None, typer.Argument(metavar="ID", help="Letters to replay (ids from `list`).")] = None,
    reason: ReasonOption = None,
    device: DeviceOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    days: DaysOption = None,
    again: Annotated[bool, typer.Option("--again", help="Also replay letters already replayed once.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be replayed; publish nothing.")] = False,
    username: Annotated[
        str | None,
        typer.Option(
            envvar="ZHIJIAN_ADMIN_MQTT_USERNAME",
            help="Broker account to publish with: an admin's (`zhijian-admin-<who>`). Default: the settings' "
            "ZHIJIAN_MQTT_USERNAME if it is an admin account, else anonymous.",
        ),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(envvar="ZHIJIAN_ADMIN_MQTT_PASSWORD", help="Its password (asked for when not given)."),
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the broker's answers.")] = 30.0,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Publish dead letters again, so the **running** ingest judges them anew with every check (keys, tags,
    records, sequence rules): after a fix, e.g. a device registered after its first messages were refused
    as `unknown_device`.

    Each letter's exact stored bytes go to the broker (ZHIJIAN_MQTT_HOST / ZHIJIAN_MQTT_PORT of the ingest's
    settings) on its original data topic, MQTT 5 at QoS 1, and count as replayed only when the broker's
    PUBACK says it took them for a subscriber. What the ingest stores then is in InfluxDB; what it refuses
    again becomes a *new* dead letter. The letter itself is kept and marked replayed (evidence stays
    until its quota evicts it); replaying it once more needs `--again`. Letters that did not come on a
    device data topic (`(spool)`, `(derived)`, bad topics) cannot be replayed this way.

    Select by ids, `--reason`, `--device` and times (at least ids, a reason or a device):
    `zhijian ingest dead-letters replay --reason unknown_device --device scale-0042`.
    Exit status 1 if an id asked for is not there, the broker did not take a letter, or nothing was left to
    replay."""
    with _errors():
        if not ids and reason is None and device is None:
            raise CliError("say which letters: ids, --reason or --device (see `list`)")
        settings = _settings(config)
        query = _query(ids=tuple(ids or ()), device=device, reason=reason, since=since, until=until, days=days)
        from .dead_letter_replay import Replayer, plan, publish, short_list

        with _open(config, store) as letters:
            todo, skipped, missing = plan(letters, query, ids or [], again=again)
            for line in (*missing, *skipped):
                err_console.print(f"[yellow]{escape(line)}[/]", highlight=False)
            if dry_run:
                console.print(f"would replay {len(todo):,} letter(s): {short_list(todo)}")
                raise typer.Exit(1 if missing else 0)
            if not todo:
                raise CliError("nothing to replay")
            account, secret = _account(settings, username, password)
            watermark = letters.last_id()
            replayer = Replayer(
                settings.mqtt_host, settings.mqtt_port, username=account, password=secret, timeout_s=timeout
            )
            try:
                failures = publish(letters, todo, replayer, err_console)
            finally:
                replayer.close()
        for outcome in failures:
            err_console.print(
                f"[red]letter {outcome.letter_id} not replayed:[/] {escape(outcome.problem)}", highlight=False
            )
        replayed = len(todo) - len(failures)
        console.print(
            f"replayed {replayed:,} of {len(todo):,} letter(s) to {settings.mqtt_host}:{settings.mqtt_port}; the "
            f"ingest judges them again: stored ones go to InfluxDB, refused ones come back as new dead letters "
            f"(ids above {watermark})"
        )
    if missing or failures:
        raise typer.Exit(1)


def _account(settings: IngestSettings, username: str | None, password: str | None) -> tuple[str | None, str | None]:
    """The admin account to publish with: given, else the settings' own if it is an admin's, else none."""
    from device_registry.broker_files import service_role

    if username is None and settings.mqtt_username and service_role(settings.mqtt_username) == "admin":
        username = settings.mqtt_username
        password = password if password is not None else settings.mqtt_password
    if username and password is None:
        password = typer.prompt(f"broker password of {username}", hide_input=True)
    return username, password
