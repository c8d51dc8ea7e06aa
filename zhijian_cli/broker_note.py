"""What the CLI says about the broker after a credential change: confirmed, only written, or failed.

A revocation the broker has not applied is refused by the API (502) and reported like any error; a new
bundle whose broker update failed is still delivered (its secrets exist nowhere else), then the command
exits 1 so that a script does not take the device for ready."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from .cli_common import err_console
from .registry_client import CliError


def broker_note(out: dict[str, Any], *, what: str, as_json: bool = False) -> None:
    """Print the broker's part of ``out`` (a provision, rotation or revocation result) to stderr, unless
    ``as_json`` (the JSON holds it); raises CliError (exit 1) if the broker has not applied it."""
    broker = out.get("broker") or {}
    state, detail = broker.get("state"), str(broker.get("detail", ""))
    if state == "failed":
        hint = "" if "broker-files" in detail else "; fix that and run `zhijian registry broker-files`"
        raise CliError(detail + hint)
    if as_json:
        return
    if state == "confirmed":
        err_console.print(f"broker: {escape(detail)} ({what})", highlight=False)
    elif state == "written":
        err_console.print(
            f"[yellow]broker: {escape(detail)}[/] (set ZHIJIAN_BROKER_CHECK_HOST to confirm)", highlight=False
        )
    elif state == "off":
        err_console.print(f"[yellow]broker: {escape(detail)}[/]", highlight=False)
