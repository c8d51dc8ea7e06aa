"""A simulated scale that keeps selling on a pseudo-terminal, for tests that kill and restart the agent
reading it.
"""

from __future__ import annotations

import threading
import time

from device_profiles import builtin
from firmware_sim import PtyLineServer, ScaleFirmware

PROFILE = builtin("zj-pcs-30")


class Seller:
    """A scale on a pty and a customer buying every ``period_s``."""

    def __init__(self, period_s: float = 0.02) -> None:
        self.firmware = ScaleFirmware(PROFILE, seed=5)
        self.lock = threading.Lock()
        self.server = PtyLineServer(self.firmware.respond, lock=self.lock, name="chaos").start()
        self.sold = 0
        self.period_s = period_s
        self.selling = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop = threading.Event()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            if self.selling.is_set():
                with self.lock:
                    self.firmware.sell(
                        ts_ms=int(time.time() * 1000),
                        plu="3001",
                        true_net_mg=500_000 + self.sold,
                        unit_price_fen_per_kg=600,
                    )
                self.sold += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.server.close()
