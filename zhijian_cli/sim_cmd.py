"""``zhijian sim …``: simulated devices to try the system with, speaking the real bytes on a pty."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    rich_markup_mode="markdown",
    help="Simulated devices (the firmware simulator) for trying out agents and provisioning.",
)
console = Console(soft_wrap=True)  # messages are not re-wrapped (logs, scripts); tables keep the width


@app.command("scale")
def scale(
    profile: Annotated[str, typer.Option(help="An MT-SICS scale profile.")] = "zj-pcs-30",
    rate: Annotated[float, typer.Option(min=0.01, help="Sales per second.")] = 0.5,
    cheat: Annotated[str | None, typer.Option(help="Make it cheat: cheat_chip, recalibration, price_math, …")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 1,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")] = None,
) -> None:
    """A smart scale on a pseudo-terminal making sales at a market stall. It prints its port: give that
    to `zhijian device provision --port …` (or a bundle's source port) and run the agent on it."""
    from device_profiles import ProfileError, builtin
    from firmware_sim.pty_link import PtyLineServer
    from firmware_sim.purchases import draw_purchase
    from firmware_sim.scale import CHEAT_KINDS, Cheat, ScaleFirmware

    if cheat is not None and cheat not in CHEAT_KINDS:
        console.print(f"[red]--cheat must be one of {', '.join(CHEAT_KINDS)}[/]")
        raise typer.Exit(2)
    try:
        firmware = ScaleFirmware(builtin(profile), seed=seed, cheat=Cheat(cheat) if cheat else None)
    except (ProfileError, ValueError) as exc:
        console.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(2) from exc
    lock = threading.Lock()
    rng = random.Random(seed)
    sold = 0
    with PtyLineServer(firmware.respond, lock=lock, name="sim-scale") as server:
        console.print(
            f"simulated {profile} scale{' (cheating: ' + cheat + ')' if cheat else ''} on [bold]{server.port}[/]"
        )
        started = time.monotonic()
        with contextlib.suppress(KeyboardInterrupt):
            while duration is None or time.monotonic() - started < duration:
                purchase = draw_purchase(rng)  # in bags and trays, with weighed and preset tares
                with lock:
                    purchase.sell_on(firmware, ts_ms=int(time.time() * 1000))
                sold += 1
                time.sleep(1 / rate)
    console.print(f"{sold} sales made")
