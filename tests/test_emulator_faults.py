"""Emulator fault injection, concurrency and persistence, over real loopback HTTP."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from segsync.emulator.errors import EmulatorError
from segsync.emulator.faults import FaultConfig, FaultInjector
from segsync.emulator.server import Emulator

Factory = Callable[..., Emulator]
MATCH_ALL = {"conjonction": "and", "groups": []}


def connect(emu: Emulator, token: str | None = None, **options: Any) -> httpx.Client:
    return httpx.Client(
        base_url=emu.url,
        headers={"Authorization": f"Bearer {token or emu.token}"},
        timeout=30,
        verify=False,
        **options,
    )


def companies(emu: Emulator) -> str:
    return str(next(m["uuid"] for m in emu.catalog.models if m["slug"] == "companies"))


def get_many(emu: Emulator, n: int) -> list[httpx.Response]:
    with connect(emu) as api:
        return [api.get("/storage/models/list") for _ in range(n)]


# --------------------------------------------------------------------------- 429 and 502


def predicted(n: int, **config: Any) -> list[int]:
    """The statuses a fresh injector with ``config`` gives to n successful GETs."""
    injector = FaultInjector(FaultConfig(**config))
    return [injector.draw().status or 200 for _ in range(n)]


def test_429_rate_is_as_configured_and_reproducible(emulator_factory: Factory) -> None:
    responses = get_many(emulator_factory(fail_429=0.2, seed=7), 500)
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 429}
    assert 70 <= statuses.count(429) <= 130  # 0.2 x 500 = 100, binomial sd ~9
    for response in responses:
        if response.status_code == 429:
            assert response.headers["Retry-After"] == "1"
            assert response.content == b""
    # the same seed gives exactly the same sequence; another seed another one
    assert predicted(500, fail_429=0.2, seed=7) == statuses
    assert predicted(500, fail_429=0.2, seed=8) != statuses


def test_429_without_retry_after_fraction(emulator_factory: Factory) -> None:
    emu = emulator_factory(fail_429=0.5, bare_429=0.3, retry_after=0, seed=1)
    limited = [r for r in get_many(emu, 300) if r.status_code == 429]
    bare = [r for r in limited if "Retry-After" not in r.headers]
    assert 120 <= len(limited) <= 180
    assert 0.2 <= len(bare) / len(limited) <= 0.4
    assert {r.headers["Retry-After"] for r in limited if r not in bare} == {"0"}
    assert emu.faults.counts["429_bare"] == len(bare)
    assert emu.faults.counts["429"] == len(limited) - len(bare)


def test_5xx_rate_and_bodies(emulator_factory: Factory) -> None:
    emu = emulator_factory(fail_5xx=0.2, seed=11)
    responses = get_many(emu, 500)
    failed = [r for r in responses if r.status_code != 200]
    assert {r.status_code for r in failed} == {502}
    assert 70 <= len(failed) <= 130
    bodies = Counter(
        "empty" if not r.content else "json" if r.content.startswith(b"{") else "html"
        for r in failed
    )
    assert set(bodies) == {"empty", "json", "html"}
    assert json.loads(next(r.content for r in failed if r.content.startswith(b"{"))) == {
        "errorMessage": "Bad gateway"
    }
    assert sum(emu.faults.counts[f"502_{k}"] for k in ("empty", "json", "html")) == len(failed)
    assert emu.faults.counts["requests"] == 500
    assert predicted(500, fail_5xx=0.2, seed=11) == [r.status_code for r in responses]


def test_rates_do_not_overlap_and_must_fit() -> None:
    injector = FaultInjector(FaultConfig(seed=5, fail_429=0.3, fail_5xx=0.3))
    fates = Counter(injector.draw().status for _ in range(2000))
    assert 500 <= fates[429] <= 700 and 500 <= fates[502] <= 700
    assert 700 <= fates[None] <= 900
    with pytest.raises(ValueError, match="must not exceed 1"):
        FaultInjector(FaultConfig(fail_429=0.6, fail_5xx=0.6))
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultInjector(FaultConfig(drop_after_commit=1.5))


def test_faults_spare_unauthenticated_requests(emulator_factory: Factory) -> None:
    emu = emulator_factory(fail_429=1.0)
    with connect(emu, token="wrong") as stranger:
        assert {stranger.get("/storage/models/list").status_code for _ in range(20)} == {401}
    assert emu.faults.counts["requests"] == 0
    assert {r.status_code for r in get_many(emu, 5)} == {429}


def test_latency_keeps_answers_intact(emulator_factory: Factory) -> None:
    emu = emulator_factory(latency_ms=2)
    assert emu.faults.config.latency_ms == 2
    assert [r.status_code for r in get_many(emu, 3)] == [200, 200, 200]


def test_set_faults_replaces_the_configuration(emulator_factory: Factory) -> None:
    emu = emulator_factory()
    assert {r.status_code for r in get_many(emu, 5)} == {200}
    emu.set_faults(FaultConfig(fail_5xx=1.0))
    assert {r.status_code for r in get_many(emu, 5)} == {502}


# --------------------------------------------------------------------------- dropped writes


def create_all(emu: Emulator, n: int) -> list[int]:
    """Create n segments one by one; the indexes whose answer was dropped."""
    dropped = []
    with connect(emu) as api:
        for i in range(n):
            body = {"name": f"seg {i}", "modelUuid": companies(emu), "filter": MATCH_ALL}
            try:
                response = api.post("/segmentation/segments", json=body)
            except httpx.RemoteProtocolError:
                dropped.append(i)
            else:
                assert response.status_code == 200
    return dropped


def test_drop_after_commit_rate_and_commit(emulator_factory: Factory) -> None:
    emu = emulator_factory(fixtures=False, drop_after_commit=0.25, seed=3)
    dropped = create_all(emu, 200)
    assert 25 <= len(dropped) <= 75
    assert emu.faults.counts["dropped"] == len(dropped)
    assert emu.faults.counts["writes"] == 200
    with connect(emu) as api:
        names = [s["name"] for s in api.get("/segmentation/segments/list").json()["segments"]]
    assert names == [f"seg {i}" for i in range(200)]  # every dropped create was committed
    injector = FaultInjector(FaultConfig(drop_after_commit=0.25, seed=3))
    assert [i for i in range(200) if injector.draw().drop] == dropped  # reproducible


def test_drops_hit_only_committed_writes(emulator_factory: Factory) -> None:
    emu = emulator_factory(fixtures=False, drop_after_commit=1.0)
    with connect(emu) as api:
        assert api.get("/segmentation/segments/list").status_code == 200
        fetch = {"modelUuid": companies(emu), "filter": MATCH_ALL, "fetchingLimit": 1}
        assert api.post("/segmentation/segments/fetch", json=fetch).json()["count"] == 300
        rejected = api.post("/segmentation/segments", json={"name": "x"})
        assert rejected.status_code == 400  # not committed: answered
        body = {"name": "x", "modelUuid": companies(emu), "filter": MATCH_ALL}
        with pytest.raises(httpx.RemoteProtocolError):
            api.post("/segmentation/segments", json=body)
        (segment,) = api.get("/segmentation/segments/list").json()["segments"]
        path = f"/segmentation/segments/{segment['uuid']}"
        with pytest.raises(httpx.RemoteProtocolError):
            api.put(path, json={"name": "renamed"})
        assert api.get(path).json()["segment"]["name"] == "renamed"
        with pytest.raises(httpx.RemoteProtocolError):
            api.request("DELETE", path, json={})
        assert api.get(path).json()["reason"] == "segmentNotFound"
    assert emu.faults.counts["dropped"] == 3


# --------------------------------------------------------------------------- concurrency


def test_parallel_creates_and_updates_keep_the_store_consistent(
    emulator_factory: Factory,
) -> None:
    emu = emulator_factory(fixtures=False)
    model = companies(emu)
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    with connect(emu, limits=limits) as api, ThreadPoolExecutor(max_workers=16) as pool:

        def make(i: int) -> dict[str, Any]:
            body = {"name": "Same name", "modelUuid": model, "filter": MATCH_ALL, "limit": i + 1}
            response = api.post("/segmentation/segments", json=body)
            assert response.status_code == 200, response.text
            segment: dict[str, Any] = response.json()["segment"]
            return segment

        created = list(pool.map(make, range(200)))

        def bump(segment: dict[str, Any]) -> int:
            path = f"/segmentation/segments/{segment['uuid']}"
            return api.put(path, json={"limit": segment["limit"] + 1000}).status_code

        assert set(pool.map(bump, created)) == {200}
        listed = api.get("/segmentation/segments/list").json()["segments"]
    assert len(listed) == 200
    assert len({s["uuid"] for s in listed}) == 200
    assert {s["slug"] for s in listed} == {"same_name"} | {f"same_name_{n}" for n in range(2, 201)}
    assert sorted(s["limit"] for s in listed) == list(range(1001, 1201))
    models = {m["uuid"]: m for m in emu.store.models()}
    assert models[model]["segmentsCount"] == 200


# --------------------------------------------------------------------------- persistence


def test_data_file_round_trip(emulator_factory: Factory, tmp_path: Path) -> None:
    data = tmp_path / "emulator.json"
    first = emulator_factory(fixtures=False, data_path=data)
    assert json.loads(data.read_text())["segments"] == []  # written at start
    with connect(first) as api:
        made = []
        for name in ("a", "b", "c"):
            body = {"name": name, "modelUuid": companies(first), "filter": MATCH_ALL}
            made.append(api.post("/segmentation/segments", json=body).json()["segment"])
        api.put(f"/segmentation/segments/{made[0]['uuid']}", json={"name": "a2", "limit": 3})
        api.request("DELETE", f"/segmentation/segments/{made[1]['uuid']}", json={})
        before = api.get("/segmentation/segments/list").json()["segments"]
    first.store.set_linked_to_workflow(made[2]["uuid"])
    first.stop()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emulator.json"]  # no temporary left

    second = emulator_factory(fixtures=False, data_path=data)
    with connect(second) as api:
        assert api.get("/segmentation/segments/list").json()["segments"] == before
        assert [s["name"] for s in before] == ["a2", "c"] and before[0]["limit"] == 3
        removed = api.request("DELETE", f"/segmentation/segments/{made[1]['uuid']}", json={})
        assert removed.json()["reason"] == "segmentAlreadyRemoved"
        linked = api.put(f"/segmentation/segments/{made[2]['uuid']}", json={"name": "x"})
        assert linked.json()["reason"] == "segmentLinkedToWorkflow"
        # slugs survive too: "a" (renamed a2) still holds its slug
        body = {"name": "a", "modelUuid": companies(second), "filter": MATCH_ALL}
        assert api.post("/segmentation/segments", json=body).json()["segment"]["slug"] == "a_2"


def test_data_file_keeps_fixtures_from_its_first_run(
    emulator_factory: Factory, tmp_path: Path
) -> None:
    data = tmp_path / "emulator.json"
    emulator_factory(data_path=data).stop()
    again = emulator_factory(data_path=data, fixtures=False)
    assert len(again.store.list_segments()) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read emulator data file"),
        ('{"format": "other"}', "not a segsync emulator data file"),
        ('{"format": "segsync-emulator-data", "version": 9}', "unsupported emulator data version"),
        (
            '{"format": "segsync-emulator-data", "version": 1, "workspace": "prod", '
            '"segments": []}',
            "belongs to workspace 'prod', not 'demo'",
        ),
        (
            '{"format": "segsync-emulator-data", "version": 1, "workspace": "demo", '
            '"segments": [{"segment": {}}]}',
            "malformed segment",
        ),
    ],
)
def test_bad_data_files_are_emulator_errors(
    emulator_factory: Factory, tmp_path: Path, content: str, message: str
) -> None:
    data = tmp_path / "emulator.json"
    data.write_text(content)
    with pytest.raises(EmulatorError, match=message) as info:
        emulator_factory(data_path=data)
    assert info.value.path == str(data)
    assert data.read_text() == content  # never overwritten
