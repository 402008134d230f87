"""Shared fixtures. Emulators run in-process on a free loopback port, one per test."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from segsync.emulator.server import Emulator, start_emulator

EMULATOR_TOKEN = "emu-T0K3N-d41d8cd98f"


def stop(emu: Emulator) -> None:
    """``emu.stop()`` without waiting out the server's poll interval (~20 ms per emulator,
    seconds over the suite): connections wake the server up to see that it must stop."""
    stopping = threading.Thread(target=emu.stop)
    stopping.start()
    while stopping.is_alive():
        with contextlib.suppress(OSError):
            socket.create_connection((emu.host, emu.port), timeout=1).close()
        stopping.join(0.001)


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., Emulator]]:
    """Start emulators with EmulatorOptions keywords (token defaults to EMULATOR_TOKEN)."""
    started: list[Emulator] = []

    def start(**options: Any) -> Emulator:
        options.setdefault("token", EMULATOR_TOKEN)
        emu = start_emulator(**options)
        started.append(emu)
        return emu

    yield start
    for emu in started:
        stop(emu)


@pytest.fixture
def emulator(emulator_factory: Callable[..., Emulator]) -> Emulator:
    """A strict emulator with the fixture segments, requiring ``emulator.token``."""
    return emulator_factory()


@pytest.fixture
def empty_emulator(emulator_factory: Callable[..., Emulator]) -> Emulator:
    """A strict emulator without fixture segments: an otherwise empty workspace."""
    return emulator_factory(fixtures=False)
