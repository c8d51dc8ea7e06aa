"""Simulated devices on serial lines (pseudo-terminals) and TCP ports, so drivers open them as they would
open ``/dev/ttyUSB0`` or a serial-to-Ethernet converter (pyserial's ``socket://host:port``).

:class:`PtyPort` is a device's end of a serial line: the simulator writes to and reads from the master
side; ``port`` is the slave's path (``/dev/pts/N``). The slave is kept open here too, so a driver may
close and reopen the port without the pty going away. :class:`PtyLineServer` and :class:`TcpLineServer`
answer MT-SICS command lines, decoded through the same
:class:`~device_profiles.codecs.frame_buffer.FrameBuffer` the agent's driver uses; lines that are not
valid MT-SICS are counted per reason and answered with ``ES`` (syntax error), in order, as a real
indicator does. ``reply_delay_s`` makes a link slow; ``mute`` makes it silent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
import time
import tty
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from typing import Self

from device_profiles.codecs import mtsics
from device_profiles.codecs.frame_buffer import FrameBuffer, Rejected

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


class _LineServer(ABC):
    """Decodes command lines from a byte stream and produces the replies."""

    def __init__(self, respond: Callable[[mtsics.Line], bytes], *, lock: threading.Lock, name: str) -> None:
        self._respond = respond
        self._lock = lock
        self.name = name
        self.lines = 0
        self._frames: FrameBuffer[mtsics.Line] = FrameBuffer(mtsics.decode, max_bytes=4 * mtsics.MAX_LINE)
        self.reply_delay_s = 0.0
        self.mute = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"line-{name}", daemon=True)

    @abstractmethod
    def _run(self) -> None:
        """Serve the transport until stopped."""

    def start(self) -> Self:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def frame_errors(self) -> Counter[str]:
        """Command lines refused, per reason."""
        return self._frames.errors

    def _replies(self, data: bytes) -> bytes:
        out = bytearray()
        for item in self._frames.receive(data):
            if isinstance(item, Rejected):
                out += mtsics.encode("ES")
                continue
            self.lines += 1
            with self._lock:
                out += self._respond(item.value)
        if out and self.reply_delay_s:
            time.sleep(self.reply_delay_s)
        return b"" if self.mute else bytes(out)


class PtyLineServer(_LineServer):
    """A thread answering MT-SICS command lines on a pseudo-terminal."""

    def __init__(self, respond: Callable[[mtsics.Line], bytes], *, lock: threading.Lock, name: str) -> None:
        super().__init__(respond, lock=lock, name=name)
        self._pty = PtyPort()
        self.port = self._pty.port

    def close(self) -> None:
        super().close()
        self._pty.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            reply = self._replies(self._pty.read(0.1))
            if reply:
                self._pty.write(reply)


class TcpLineServer(_LineServer):
    """The same firmware behind a serial-to-Ethernet converter: one client at a time on a TCP port."""

    def __init__(self, respond: Callable[[mtsics.Line], bytes], *, lock: threading.Lock, name: str) -> None:
        super().__init__(respond, lock=lock, name=name)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.url = f"socket://127.0.0.1:{self._listener.getsockname()[1]}"

    def close(self) -> None:
        super().close()
        self._listener.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(0.1)
                self._frames.clear()  # a new client: half a line from the last one is nobody's
                while not self._stop.is_set():
                    try:
                        data = conn.recv(4096)
                    except TimeoutError:
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    reply = self._replies(data)
                    if reply:
                        conn.sendall(reply)
