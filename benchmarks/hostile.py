"""Replay hostile spec trees, state files and servers against the real CLI; print each outcome.

Every case runs ``python -m segsync …`` in a fresh folder with a 60 s limit and reports: the
exit code, the time taken, whether a traceback appeared, whether the state file changed, and
the first line of the error. A case passes when it ends in under 60 s with a clear error (or
success), no traceback, and a state file that is byte-identical unless the run succeeded.

    python benchmarks/hostile.py            # every case
    python benchmarks/hostile.py fifo drip  # some of them

Servers run on 127.0.0.1 only, in threads of this script, and stop when their case ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 60.0
TOKEN = "hostile-test-token-0123456789"
SPEC = """name: {name}
model: companies
filter:
  conjonction: and
  groups:
    - conjonction: and
      conditions:
        - {{kind: string, columnSlug: country, operator: is, values: [FR]}}
"""
STATE = {
    "version": 1, "serial": 1, "lineage": "6f1c2b3a-0000-4000-8000-000000000001",
    "segments": {},
}


@dataclass
class Outcome:
    name: str
    code: int | None
    seconds: float
    traceback: bool
    state_changed: bool
    said: str
    leaked: bool  # the secret was echoed, or the lock was left behind

    @property
    def ok(self) -> bool:
        clear = self.code in (0, 1) and bool(self.said)
        return self.seconds < LIMIT and clear and not self.traceback and not self.leaked and (
            self.code == 0 or not self.state_changed
        )


def run(folder: Path, *args: str, env: dict[str, str] | None = None,
        after: Callable[[subprocess.Popen[str]], None] | None = None) -> tuple[int | None, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("CARGO_", "SEGSYNC_"))}
    full.update({"NO_COLOR": "1", **(env or {})})
    proc = subprocess.Popen(
        [sys.executable, "-m", "segsync", *args], cwd=folder, env=full,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    if after is not None:
        after(proc)
    try:
        out, err = proc.communicate(timeout=LIMIT + 5)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return None, out + err
    return proc.returncode, out + err


def spec_tree(folder: Path, n: int = 2) -> Path:
    specs = folder / "segments"
    specs.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (specs / f"s{i}.yaml").write_text(SPEC.format(name=f"Hostile {i}"))
    (folder / "segsync.state.json").write_text(json.dumps(STATE, indent=2) + "\n")
    return specs


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@contextmanager
def server(handle: Callable[[socket.socket], None]) -> Iterator[str]:
    """A loopback server answering every connection with ``handle`` (in a thread)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.5)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def drip(conn: socket.socket) -> None:
    """Answer one byte a second, forever (until the client goes)."""
    body = b'{"workspace": {"uuid": "w", "name": "slow"}}' * 100
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    try:
        conn.recv(65536)
        for byte in head % len(body) + body:
            conn.sendall(bytes([byte]))
            time.sleep(1.0)
    except OSError:
        pass
    finally:
        conn.close()


def silent(conn: socket.socket) -> None:
    """Accept, read, never answer."""
    try:
        conn.recv(65536)
        time.sleep(LIMIT * 3)
    except OSError:
        pass
    finally:
        conn.close()


def case(name: str, body: Callable[[Path], tuple[int | None, str]]) -> Outcome:
    folder = Path(tempfile.mkdtemp(prefix=f"segsync-hostile-{name}-"))
    try:
        spec_tree(folder)
        SETUP.get(name, lambda _: None)(folder)
        state = folder / "segsync.state.json"
        before = state.read_bytes() if state.exists() else b""
        started = time.monotonic()
        code, output = body(folder)
        seconds = time.monotonic() - started
        after = state.read_bytes() if state.exists() else b""
        lines = [line for line in output.splitlines() if line.strip()]
        said = next((line for line in lines if line.startswith("error: ")), lines[-1] if lines
                    else "")
        leaked = "LEAK" in lines or "LOCK LEFT" in lines
        return Outcome(name, code, seconds, "Traceback" in output, after != before, said, leaked)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _dangling(folder: Path) -> tuple[int | None, str]:
    os.symlink("missing.yaml", folder / "segments" / "gone.yaml")
    return run(folder, "validate")


def _fifo(folder: Path) -> tuple[int | None, str]:
    os.mkfifo(folder / "segments" / "pipe.yaml")
    return run(folder, "validate")


def _dev_zero(folder: Path) -> tuple[int | None, str]:
    os.symlink("/dev/zero", folder / "segments" / "zero.yaml")
    return run(folder, "validate")


def _outside(folder: Path) -> tuple[int | None, str]:
    (folder / ".env").write_text("CARGO_API_TOKEN=sk_secret_do_not_print\n")
    os.symlink("../.env", folder / "segments" / "env.yaml")
    code, output = run(folder, "validate")
    return code, output + ("\nLEAK" if "sk_secret" in output else "")


def _loop(folder: Path) -> tuple[int | None, str]:
    os.symlink("..", folder / "segments" / "again")
    return run(folder, "validate")


def _aliases(size: int) -> Callable[[Path], tuple[int | None, str]]:
    def body(folder: Path) -> tuple[int | None, str]:
        lines = ['a0: &a0 [{kind: string, columnSlug: country, operator: is, values: [FR]}]']
        levels = 9 if size < 4000 else 30
        for i in range(1, levels):
            lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
        text = "x: \n" + "\n".join("  " + line for line in lines) + "\n"
        text += (SPEC.format(name="Bomb").replace(
            "        - {kind: string, columnSlug: country, operator: is, values: [FR]}\n",
            f"        - *a{levels - 1}\n"))
        (folder / "segments" / "bomb.yaml").write_text(text)
        return run(folder, "validate")
    return body


def _deep_state(folder: Path) -> tuple[int | None, str]:
    return run(folder, "state", "list")


SETUP: dict[str, Callable[[Path], None]] = {
    "state-1000-deep": lambda folder: (folder / "segsync.state.json").write_text(
        '{"version": 1, "x": ' + nested(1000) + "}\n"
    ),
}


def _deep_plan_file(folder: Path) -> tuple[int | None, str]:
    (folder / "plan.json").write_text('{"kind": "segsync-plan", "x": ' + nested(1000) + "}\n")
    return run(folder, "apply", "--auto-approve", "plan.json",
               env={"CARGO_API_TOKEN": TOKEN, "CARGO_API_URL": "http://127.0.0.1:9/v1"})


def _deep_yaml(folder: Path) -> tuple[int | None, str]:
    text = "".join(f"{'  ' * i}k{i}:\n" for i in range(600)) + f"{'  ' * 600}v: 1\n"
    (folder / "segments" / "deep.yaml").write_text(text)
    return run(folder, "validate")


def _indentation(folder: Path) -> tuple[int | None, str]:
    (folder / "segments" / "s0.yaml").write_text(SPEC.format(name="Bad").replace(
        "    - conjonction: and\n      conditions:", "    - conjonction: and\n    conditions:"))
    return run(folder, "validate")


Case = Callable[[Path], tuple[int | None, str]]


def _served_by(handler: Callable[[socket.socket], None]) -> Case:
    def body(folder: Path) -> tuple[int | None, str]:
        with server(handler) as url:
            return run(folder, "plan", "--refresh",
                       env={"CARGO_API_URL": url, "CARGO_API_TOKEN": TOKEN})
    return body


def _sigterm(folder: Path) -> tuple[int | None, str]:
    with server(silent) as url:
        def stop(proc: subprocess.Popen[str]) -> None:
            time.sleep(2.0)
            proc.send_signal(signal.SIGTERM)

        code, output = run(folder, "apply", "--auto-approve",
                           env={"CARGO_API_URL": url, "CARGO_API_TOKEN": TOKEN}, after=stop)
    lock = folder / "segsync.state.json.lock"
    return code, output + ("\nLOCK LEFT" if lock.exists() else "")


CASES: dict[str, Callable[[Path], tuple[int | None, str]]] = {
    "dangling-symlink": _dangling,
    "fifo": _fifo,
    "dev-zero": _dev_zero,
    "link-outside": _outside,
    "symlink-loop": _loop,
    "alias-bomb-2k": _aliases(2000),
    "alias-bomb-12k": _aliases(12000),
    "state-1000-deep": _deep_state,
    "plan-file-1000-deep": _deep_plan_file,
    "yaml-600-deep": _deep_yaml,
    "bad-indentation": _indentation,
    "drip-server": _served_by(drip),
    "silent-server": _served_by(silent),
    "sigterm": _sigterm,
}


def main(names: list[str]) -> int:
    chosen = names or list(CASES)
    print(f"{'case':22} {'exit':>4} {'seconds':>8}  ok  first line")
    failures = 0
    for name in chosen:
        outcome = case(name, CASES[name])
        failures += not outcome.ok
        code = "-" if outcome.code is None else str(outcome.code)
        print(f"{name:22} {code:>4} {outcome.seconds:8.2f}  {'yes' if outcome.ok else 'NO ':3} "
              f"{outcome.said[:110]}", flush=True)
    print(f"{len(chosen) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
