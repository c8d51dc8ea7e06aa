"""`zhijian ingest run` as a real process in tests: a settings file with its state under a temp folder, the
process started, stopped, killed and restarted on the same state, its output in one log file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.waiting import wait_until


def state_config(tmp_path: Path, name: str, **settings: object) -> Path:
    """A settings file ``tmp_path/name.env`` whose on-disk state lies under ``tmp_path/name``; ``settings`` are
    more ``ZHIJIAN_*`` values (without the prefix), which win over these defaults."""
    state = tmp_path / name
    state.mkdir(parents=True, exist_ok=True)
    values: dict[str, object] = {
        "BATCH_MAX_MS": 50,
        "SPOOL_PATH": state / "spool.sqlite",
        "STATE_PATH": state / "ingest_state.sqlite",
        "METRICS_PORT": 0,
        **settings,
    }
    path = tmp_path / f"{name}.env"
    path.write_text("".join(f"ZHIJIAN_{k}={v}\n" for k, v in values.items()))
    return path


class IngestProcess:
    """`zhijian ingest run --config <file>` as a process; its output appended to one log file."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.log_path = config.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None
        self._from = 0

    def start(self) -> IngestProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIJIAN_")}
        self._from = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "zhijian_cli", "ingest", "run", "--config", str(self.config)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def output(self) -> str:
        """What this start has printed and logged so far."""
        return self.log_path.read_text(errors="replace")[self._from :] if self.log_path.exists() else ""

    def wait_connected(self) -> None:
        assert wait_until(lambda: "ingest connected" in self.output() or not self.alive, 90), self.output()
        assert self.alive, self.output()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self.proc = None
        return code

    def wait_exit(self, timeout_s: float = 90) -> int:
        """The exit status of a process that ends by itself."""
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(30)
