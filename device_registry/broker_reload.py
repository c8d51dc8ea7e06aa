"""Telling Mosquitto to re-read its files (SIGHUP), only ever Mosquitto, and the reloader that does it
from Mosquitto's own user.

A pid file can outlive its process and its pid be reused by anything, so the pid is checked before it is
signalled: the process must be named ``mosquitto`` (``/proc/<pid>/comm``; ``/proc/<pid>/exe`` is not
readable for a daemon that dropped root). The process is pinned with a pidfd first and signalled through
it, so the process checked is the process signalled even if the pid is reused in between.

Only a process of the same user (or root) may signal Mosquitto. In the production layout the registry
runs as ``zhijian`` and Mosquitto as ``mosquitto``, so the registry does not signal: it writes the files
and :func:`watch` — ``zhijian registry broker-reloader``, a service running as ``mosquitto`` — sees them
change and signals (docs/operations.md, "Broker credentials and ACL").
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Sequence
from pathlib import Path

from .errors import BrokerFilesStale

log = logging.getLogger(__name__)
MOSQUITTO_COMM = "mosquitto"


def _comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def mosquitto_pid(pid_file: Path) -> int:
    """The pid in ``pid_file``, if that process is Mosquitto; else BrokerFilesStale saying why not."""
    try:
        text = pid_file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise BrokerFilesStale(f"cannot read Mosquitto's pid file {pid_file}: {exc}") from exc
    if not text.isdigit() or int(text) <= 0:
        raise BrokerFilesStale(f"{pid_file} holds {text[:40]!r}, not a process id")
    pid = int(text)
    comm = _comm(pid)
    if comm is None:
        raise BrokerFilesStale(f"{pid_file} names process {pid}, which does not exist (a stale pid file)")
    if comm != MOSQUITTO_COMM:
        raise BrokerFilesStale(
            f"{pid_file} names process {pid}, which is {comm!r}, not Mosquitto (a stale pid file): not signalled"
        )
    return pid


def signal_reload(pid_file: Path) -> int:
    """Send SIGHUP to the Mosquitto named by ``pid_file``; returns its pid. Raises BrokerFilesStale if the
    pid file names no Mosquitto or the signal is refused (another user's process: EPERM)."""
    pid = mosquitto_pid(pid_file)
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError as exc:
        raise BrokerFilesStale(f"Mosquitto (pid {pid}) has just exited") from exc
    try:
        if _comm(pid) != MOSQUITTO_COMM:  # the pid changed hands between the check and the pidfd
            raise BrokerFilesStale(f"process {pid} is no longer Mosquitto: not signalled")
        signal.pidfd_send_signal(pidfd, signal.SIGHUP)
    except PermissionError as exc:
        raise BrokerFilesStale(
            f"Mosquitto (pid {pid}) runs as another user, which may not be signalled from here (EPERM); "
            "run `zhijian registry broker-reloader` as Mosquitto's user instead of setting ZHIJIAN_BROKER_PID_FILE"
        ) from exc
    except ProcessLookupError as exc:
        raise BrokerFilesStale(f"Mosquitto (pid {pid}) has just exited") from exc
    finally:
        os.close(pidfd)
    return pid


Stamp = tuple[int, int, int] | None


def _stamp(path: Path) -> Stamp:
    # a rename gives a new inode; an edit in place a new mtime or size
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _unreadable(files: Sequence[Path]) -> str:
    """Why Mosquitto could not read ``files`` now ('' when it can: the reloader runs as its user). A reload
    with an unreadable password file makes Mosquitto drop every client, so it is not asked for then."""
    for f in files:
        try:
            with f.open("rb") as fh:
                fh.read(1)
        except OSError as exc:
            return f"{f}: {exc.strerror or exc}"
    return ""


def watch(
    files: Sequence[Path], pid_file: Path, *, interval_s: float = 0.5, stop: threading.Event | None = None
) -> None:
    """Signal Mosquitto whenever one of ``files`` changes (and once at start, in case they changed while
    nobody watched), until ``stop`` is set. A refused or impossible signal is logged, never fatal: the
    registry's probe reports a reload that did not happen, and the next change tries again. While a file
    cannot be read (as this user: Mosquitto's) no reload is asked for: Mosquitto would drop every client
    on a password file it cannot open; the files are looked at again each interval."""
    stop = stop or threading.Event()
    last: list[Stamp] | None = None
    unreadable_at: list[Stamp] | None = None  # the files' state when last found unreadable (logged once)
    while True:
        now = [_stamp(f) for f in files]
        why = _unreadable(files) if now != last else ""
        if why:
            if now != unreadable_at:
                log.error(
                    "broker files unreadable, Mosquitto not told to re-read them (it would drop every client): %s", why
                )
            unreadable_at = now
        elif now != last:
            try:
                pid = signal_reload(pid_file)
            except BrokerFilesStale as exc:
                log.error("broker files changed, Mosquitto not told: %s", exc)
            else:
                log.info(
                    "broker files %s: Mosquitto (pid %d) told to re-read them",
                    "read" if last is None else "changed",
                    pid,
                )
            last = now
        if stop.wait(interval_s):
            return
