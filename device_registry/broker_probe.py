"""Asking Mosquitto whether it has re-read the registry's files: one MQTT CONNECT as the probe account.

Every time the registry writes the password file it puts in a fresh random password for the probe
account (:data:`PROBE_USER`); the broker accepts that password only once it has re-read the file. A
CONNACK of 0 therefore says "the broker works from these files now", whatever reloaded it (the
reloader running as Mosquitto's user, systemd, an operator): no shared process, no signal across users.

The CONNECT is written by hand (MQTT 3.1.1, 20-odd bytes) rather than through paho, so the registry's
API process does not load the device-side MQTT stack for it.
"""

from __future__ import annotations

import socket

PROBE_USER = "zhijian-probe"  # in the service namespace (no device may take it); the ACL grants it nothing
ACCEPTED = 0
# CONNACK return codes of MQTT 3.1.1 (section 3.2.2.3), for messages
CONNACK_WORDS = {
    0: "accepted",
    1: "refused: protocol version",
    2: "refused: client id",
    3: "refused: server unavailable",
    4: "refused: bad user name or password",
    5: "refused: not authorised",
}


def _text(value: str) -> bytes:
    raw = value.encode()
    return len(raw).to_bytes(2, "big") + raw


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(username: str, password: str, *, keepalive_s: int = 10) -> bytes:
    """An MQTT 3.1.1 CONNECT with a clean session, user name and password (client id = user name)."""
    flags = 0b1100_0010  # user name, password, clean session
    variable = _text("MQTT") + bytes([4, flags]) + keepalive_s.to_bytes(2, "big")
    payload = _text(username) + _text(username) + _text(password)
    body = variable + payload
    return bytes([0x10]) + _remaining_length(len(body)) + body


def connack_code(host: str, port: int, username: str, password: str, *, timeout_s: float = 5.0) -> int:
    """The broker's CONNACK return code for ``username``/``password``; raises OSError if it does not answer
    (refused, timed out, closed without a CONNACK)."""
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(connect_packet(username, password))
        answer = b""
        while len(answer) < 4:
            chunk = sock.recv(4 - len(answer))
            if not chunk:
                raise ConnectionError(f"{host}:{port} closed the connection without a CONNACK")
            answer += chunk
        if answer[0] != 0x20 or answer[1] != 2:
            raise ConnectionError(f"{host}:{port} answered {answer.hex()}, not an MQTT 3.1.1 CONNACK")
        if answer[3] == ACCEPTED:
            sock.sendall(b"\xe0\x00")  # DISCONNECT: leave cleanly, no will, no session kept
        return answer[3]
