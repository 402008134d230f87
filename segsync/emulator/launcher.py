"""Start ``python -m segsync emulator`` as a subprocess and wait for its ready line.

For end-to-end tests and benchmarks that want the emulator in its own process (as a user runs
it). The token is passed through the environment, never on the command line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from segsync.emulator.errors import EmulatorError

READY_PREFIX = "segsync emulator listening on "
TOKEN_ENV = "SEGSYNC_EMULATOR_TOKEN"


class EmulatorProcess:
    """A running emulator subprocess; ``output`` collects its stdout lines, ``errors`` stderr."""

    def __init__(self, process: subprocess.Popen[str], url: str, token: str, output: list[str]):
        self.process = process
        self.url = url
        self.token = token
        self.output = output
        self.errors: list[str] = []
        self._drains = [
            threading.Thread(target=_drain, args=(process.stdout, self.output), daemon=True),
            threading.Thread(target=_drain, args=(process.stderr, self.errors), daemon=True),
        ]
        for thread in self._drains:
            thread.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> int:
        """Terminate (SIGTERM, a clean stop) and wait; kill after ``timeout``. The exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for thread in self._drains:
            thread.join(timeout)
        return self.process.returncode

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _drain(stream: IO[str] | None, sink: list[str]) -> None:
    if stream is None:
        return
    for line in stream:
        sink.append(line.rstrip("\n"))
    stream.close()


def launch_emulator(
    *args: str,
    token: str | None = "emulator-token",
    python: str = sys.executable,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 60.0,
) -> EmulatorProcess:
    """Start ``python -m segsync emulator --port 0 [args]`` requiring ``token``.

    Returns once the ready line is printed. ``args`` are extra emulator options
    (``--port`` among them replaces the default 0). ``token=None`` starts an emulator that
    accepts any token (``.token`` is then a placeholder). Raises :class:`EmulatorError`, with the
    emulator's error output, when it exits without the ready line (it is killed when that line
    has not come after ``ready_timeout`` seconds).
    """
    command: Sequence[str] = [python, "-m", "segsync", "emulator"]
    if "--port" not in args:
        command = [*command, "--port", "0"]
    full_env = dict(os.environ if env is None else env)
    if token is None:
        full_env.pop(TOKEN_ENV, None)
    else:
        full_env[TOKEN_ENV] = token
    full_env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [*command, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=cwd,
        env=full_env,
    )
    watchdog = threading.Timer(ready_timeout, process.kill)
    watchdog.start()
    output: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            if line.startswith(READY_PREFIX):
                url = line[len(READY_PREFIX) :].strip()
                return EmulatorProcess(process, url, token or "any-token", output)
    finally:
        watchdog.cancel()
    process.kill()
    _, stderr = process.communicate()
    detail = (stderr or "\n".join(output)).strip() or f"exit code {process.returncode}"
    raise EmulatorError(f"the emulator did not start: {detail}")
