"""Environments: one spec tree, several Cargo workspaces (staging, production, …).

The configuration lives in ``segsync.toml`` at the repository root, or in ``pyproject.toml``
under ``[tool.segsync]`` (``segsync.toml`` wins when both exist). ``segsync.toml`` is the
natural home: a segments repository is usually no Python project. Without either file nothing
changes: ``--state``, ``CARGO_API_URL`` and ``CARGO_API_TOKEN`` work as always.

```toml
[env.staging]
state = "staging.state.json"          # its own state file (required)
api-url = "https://api.getcargo.io/v1"  # optional, as CARGO_API_URL
token-env = "CARGO_STAGING_TOKEN"     # the variable holding its token (required)

[env.production]
state = "production.state.json"
token-env = "CARGO_PRODUCTION_TOKEN"
```

``--env NAME`` (or ``SEGSYNC_ENV``) selects one. Each state file stays bound to the workspace it
was first applied to, so a state used against the other environment's token is refused.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segsync.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

_KEYS = frozenset({"state", "api-url", "token-env"})


@dataclass(frozen=True)
class Environment:
    """One workspace: its state file, API URL (None: the default) and token variable."""

    name: str
    state: str
    api_url: str | None
    token_env: str
    source: str  # the file it was read from


def _read(path: Path, table: str | None) -> dict[str, Any] | None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the segsync configuration: {exc}", path=str(path)) from exc
    if table is None:
        return dict(data)
    section = data.get("tool", {}).get(table) if isinstance(data.get("tool"), dict) else None
    return section if isinstance(section, dict) else None


def load_environments(root: str | Path = ".") -> dict[str, Environment]:
    """Every environment configured in ``root`` (empty without a configuration)."""
    base = Path(root)
    for path, table in ((base / "segsync.toml", None), (base / "pyproject.toml", "segsync")):
        data = _read(path, table)
        if data is None:
            continue
        where = str(path) if table is None else f"{path} [tool.segsync]"
        unknown = sorted(set(data) - {"env"})
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r} (expected [env.NAME] tables)",
                              path=where)
        envs = data.get("env", {})
        if not isinstance(envs, dict):
            raise ConfigError("'env' must be a table of environments", path=where)
        return {name: _environment(name, value, where) for name, value in sorted(envs.items())}
    return {}


def _environment(name: str, value: Any, where: str) -> Environment:
    if not isinstance(value, dict):
        raise ConfigError(f"env.{name} must be a table", path=where)
    unknown = sorted(set(value) - _KEYS)
    if unknown:
        from segsync.spec import did_you_mean

        raise ConfigError(
            f"env.{name}: unknown key {unknown[0]!r}{did_you_mean(unknown[0], sorted(_KEYS))}",
            path=where,
        )
    for key in ("state", "token-env"):
        if not isinstance(value.get(key), str) or not value[key].strip():
            raise ConfigError(f"env.{name}: '{key}' is required (a string)", path=where)
    api_url = value.get("api-url")
    if api_url is not None and not isinstance(api_url, str):
        raise ConfigError(f"env.{name}: 'api-url' must be a string", path=where)
    return Environment(name, value["state"], api_url, value["token-env"], where)


def select(name: str, root: str | Path = ".") -> Environment:
    """The environment ``name``; ConfigError naming the configured ones when there is none."""
    envs = load_environments(root)
    if name in envs:
        return envs[name]
    if not envs:
        raise ConfigError(
            f"no environment {name!r}: there is no segsync.toml (or [tool.segsync] in "
            "pyproject.toml) with [env.NAME] tables here"
        )
    from segsync.spec import did_you_mean

    raise ConfigError(
        f"no environment {name!r}{did_you_mean(name, sorted(envs))}; configured: "
        + ", ".join(sorted(envs))
    )
