"""A null-modem cable between two pseudo-terminals: bytes written to one port come out of the other.

Simulators that need a port *path* (pymodbus' RTU server opens one) get ``port_a``; the driver under test
opens ``port_b``. The relay thread copies bytes both ways, unchanged, and can inject faults: ``drop``
swallows everything (a cut cable), ``corrupt_next`` flips a bit in the next chunk towards ``port_b``.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty


class NullModem:
    """Two connected pseudo-terminals."""

    def __init__(self) -> None:
        self._a_master, self._a_slave = os.openpty()
        self._b_master, self._b_slave = os.openpty()
        for fd in (self._a_slave, self._b_slave):
            tty.setraw(fd)
        self.port_a = os.ttyname(self._a_slave)
        self.port_b = os.ttyname(self._b_slave)
        self.drop = False
        self.corrupt_next = False
        self.bytes_relayed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="null-modem", daemon=True)

    def start(self) -> NullModem:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self._a_master, self._a_slave, self._b_master, self._b_slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> NullModem:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        peer = {self._a_master: self._b_master, self._b_master: self._a_master}
        while not self._stop.is_set():
            ready, _, _ = select.select(list(peer), [], [], 0.1)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if self.drop:
                    continue
                if self.corrupt_next and fd == self._a_master and data:
                    data = bytes([data[0] ^ 0x01]) + data[1:]
                    self.corrupt_next = False
                with contextlib.suppress(OSError):
                    os.write(peer[fd], data)
                    self.bytes_relayed += len(data)
