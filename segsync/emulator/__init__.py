"""A local Cargo-compatible API with demo data, strict checks and fault injection.

Importing this package is cheap (the command-line layer imports ``emulator.command`` at start);
the server, store and data modules load on first use of the names below.

- :class:`Emulator`, :func:`start_emulator`, :class:`EmulatorOptions` (``server``): in-process
- :func:`launch_emulator` (``launcher``): a ``python -m segsync emulator`` subprocess
- :func:`validate_segment_body` (``validate``): what the emulator would reject in a body
- :class:`FaultConfig` (``faults``): latency, 429, 502 and dropped writes
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from segsync.emulator.faults import FaultConfig
    from segsync.emulator.launcher import EmulatorProcess, launch_emulator
    from segsync.emulator.server import Emulator, EmulatorOptions, start_emulator
    from segsync.emulator.validate import validate_segment_body

_LAZY = {
    "Emulator": "server",
    "EmulatorOptions": "server",
    "start_emulator": "server",
    "EmulatorProcess": "launcher",
    "launch_emulator": "launcher",
    "FaultConfig": "faults",
    "validate_segment_body": "validate",
}

__all__ = [
    "Emulator",
    "EmulatorOptions",
    "EmulatorProcess",
    "FaultConfig",
    "launch_emulator",
    "start_emulator",
    "validate_segment_body",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'segsync.emulator' has no attribute {name!r}")
    return getattr(importlib.import_module(f"segsync.emulator.{module}"), name)
