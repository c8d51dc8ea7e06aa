"""Simulated devices on pseudo-terminals, so drivers open them as serial ports.

:class:`PtyPort` is a device's end of a serial line: the simulator writes to and reads from the master
side; ``port`` is the slave's path (``/dev/pts/N``), which pyserial opens like ``/dev/ttyUSB0``. The slave
is kept open here too, so a driver may close and reopen the port without the pty going away.
:class:`PtyLineServer` answers MT-SICS command lines on such a port; lines that are not valid MT-SICS
are counted and answered with ``ES`` (syntax error), as a real indicator does.
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


class PtyPort:
    """The device's end of a pseudo-terminal serial line."""

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self.written = 0

    def write(self, data: bytes) -> None:
        """Send bytes to whoever has the port open (dropped if the driver is not reading, like a real line)."""
        try:
            os.write(self._master, data)
            self.written += len(data)
        except OSError as exc:
            log.debug("%s: write failed: %s", self.port, exc)

    def read(self, timeout_s: float) -> bytes:
        """Bytes the driver sent, or b'' after ``timeout_s``."""
        ready, _, _ = select.select([self._master], [], [], timeout_s)
        if not ready:
            return b""
        try:
            return os.read(self._master, 4096)
        except OSError:
            return b""

    def close(self) -> None:
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class PtyLineServer:
    """A thread answering MT-SICS command lines on a pseudo-terminal."""

    def __init__(self, respond: Callable[[mtsics.Line], bytes], *, lock: threading.Lock, name: str) -> None:
        self._respond = respond
        self._lock = lock
        self.name = name
        self._pty = PtyPort()
        self.port = self._pty.port
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
        self._pty.close()

    def __enter__(self) -> PtyLineServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        buf = bytearray()
        while not self._stop.is_set():
            buf += self._pty.read(0.1)
            while buf:
                try:
                    line, used = mtsics.decode(buf)
                except FrameError as exc:
                    self.frame_errors += 1
                    del buf[: exc.consumed]
                    self._pty.write(mtsics.encode("ES"))
                    continue
                if line is None:
                    break
                del buf[:used]
                self.lines += 1
                with self._lock:
                    reply = self._respond(line)
                self._pty.write(reply)
