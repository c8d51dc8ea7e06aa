"""Serve a line-oriented device firmware on a pseudo-terminal, so drivers open it as a serial port.

The simulator holds the master side; ``port`` is the slave's path (``/dev/pts/N``), which pyserial opens
like ``/dev/ttyUSB0``. The slave is kept open here too, so a driver may close and reopen the port (as it
does after a fault) without the pty going away. Lines that are not valid MT-SICS are counted and
answered with ``ES`` (syntax error), as a real indicator does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import tty
from collections.abc import Callable

from device_profiles import FrameError
from device_profiles.codecs import mtsics

log = logging.getLogger(__name__)


class PtyLineServer:
    """A thread answering MT-SICS command lines on a pseudo-terminal."""

    def __init__(self, respond: Callable[[mtsics.Line], bytes], *, lock: threading.Lock, name: str) -> None:
        self._respond = respond
        self._lock = lock
        self.name = name
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self.frame_errors = 0
        self.lines = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pty-{name}", daemon=True)

    def start(self) -> PtyLineServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PtyLineServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        buf = bytearray()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(self._master, 4096)
            except OSError:
                return
            buf += chunk
            while buf:
                try:
                    line, used = mtsics.decode(buf)
                except FrameError as exc:
                    self.frame_errors += 1
                    del buf[: exc.consumed]
                    self._write(mtsics.encode("ES"))
                    continue
                if line is None:
                    break
                del buf[:used]
                self.lines += 1
                with self._lock:
                    reply = self._respond(line)
                self._write(reply)

    def _write(self, data: bytes) -> None:
        try:
            os.write(self._master, data)
        except OSError as exc:
            log.debug("%s: write failed: %s", self.name, exc)
