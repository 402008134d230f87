"""The emulator's --data file and its change log, and the store's indexes by model.

A change is appended to ``FILE.log`` and folded into ``FILE`` on a clean stop, on the start after
a kill, and once the log outgrows the segments held. Listing and counting a model's segments use
indexes, checked here against a brute-force scan of every stored segment.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from segsync.emulator import persist, store
from segsync.emulator.data import build_catalog
from segsync.emulator.errors import EmulatorError
from segsync.emulator.launcher import EmulatorProcess, launch_emulator
from segsync.emulator.server import Emulator
from segsync.emulator.store import HttpError, Store, StoreOptions, slug_base

Factory = Callable[..., Emulator]
MATCH_ALL = {"conjonction": "and", "groups": []}
CATALOG = build_catalog()
MODELS = {m["slug"]: m["uuid"] for m in CATALOG.models}
TOKEN = "data-log-token"


def filter_on(country: str) -> dict[str, Any]:
    condition = {"kind": "string", "columnSlug": "country", "operator": "is", "values": [country]}
    return {"conjonction": "and", "groups": [{"conjonction": "and", "conditions": [condition]}]}


def body(name: str, model: str = "companies", flt: Any = None) -> dict[str, Any]:
    return {"name": name, "modelUuid": MODELS[model], "filter": flt or MATCH_ALL}


def log_lines(data: Path) -> list[dict[str, Any]]:
    text = persist.log_path(data).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def stored(data: Path) -> list[dict[str, Any]]:
    segments: list[dict[str, Any]] = json.loads(data.read_text(encoding="utf-8"))["segments"]
    return segments


def open_store(data: Path, **options: Any) -> Store:
    return Store(CATALOG, StoreOptions(data_path=data, **options))


def killed_copy(data: Path, into: Path) -> Path:
    """The data file and its log as a killed emulator leaves them, copied into ``into``."""
    into.mkdir()
    shutil.copy(data, into / data.name)
    shutil.copy(persist.log_path(data), persist.log_path(into / data.name))
    return into / data.name


# --------------------------------------------------------------------------- clean stop


def test_changes_go_to_the_log_and_a_clean_stop_folds_it(
    emulator_factory: Factory, tmp_path: Path
) -> None:
    data = tmp_path / "emulator.json"
    emu = emulator_factory(data_path=data, fixtures=False)
    assert stored(data) == []
    at_start = data.read_text()
    with httpx.Client(
        base_url=emu.url, headers={"Authorization": f"Bearer {emu.token}"}, timeout=30
    ) as api:
        made = [api.post("/segmentation/segments", json=body(n)).json()["segment"] for n in "abc"]
        assert api.put(f"/segmentation/segments/{made[0]['uuid']}", json={"limit": 7}).is_success
        gone = api.request("DELETE", f"/segmentation/segments/{made[1]['uuid']}", json={})
        assert gone.is_success
    emu.store.set_linked_to_workflow(made[2]["uuid"])

    # one line per change, the whole segment as it is after it; the data file untouched
    lines = log_lines(data)
    assert [line["segment"]["uuid"] for line in lines] == [
        *(m["uuid"] for m in made),
        made[0]["uuid"],
        made[1]["uuid"],
        made[2]["uuid"],
    ]
    assert lines[3]["segment"]["limit"] == 7 and lines[4]["segment"]["deletedAt"] is not None
    assert [line["linkedToWorkflow"] for line in lines] == [False] * 5 + [True]
    assert data.read_text() == at_start

    full_rewrite = persist.encode("demo", emu.store.entries())
    emu.stop()
    assert data.read_text() == full_rewrite
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emulator.json"]
    segments = stored(data)
    assert [s["segment"]["name"] for s in segments] == ["a", "b", "c"]
    assert segments[0]["segment"]["limit"] == 7
    assert [s["segment"]["deletedAt"] is None for s in segments] == [True, False, True]
    assert [s["linkedToWorkflow"] for s in segments] == [False, False, True]
    # the format a full rewrite has always had: indented, sorted keys, final line end
    assert json.loads(full_rewrite)["format"] == "segsync-emulator-data"
    assert full_rewrite == json.dumps(json.loads(full_rewrite), indent=2, sort_keys=True) + "\n"


def test_a_stop_without_changes_leaves_the_data_file_alone(tmp_path: Path) -> None:
    data = tmp_path / "emulator.json"
    open_store(data).close()
    written = data.read_text()
    again = open_store(data)
    again.close()
    assert data.read_text() == written
    assert not persist.log_path(data).exists()


def test_the_log_is_folded_while_running_once_it_outgrows_the_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "FOLD_MIN_LINES", 3)
    data = tmp_path / "emulator.json"
    st = open_store(data, fixtures=False)
    first = st.create(body("a"))["uuid"]
    st.create(body("b"))
    for limit in (1, 2, 3):  # lines: 3, 4, 5 > max(3, 2 x 2 segments): folded
        st.update(first, {"limit": limit})
    assert not persist.log_path(data).exists()
    assert [s["segment"]["limit"] for s in stored(data)] == [3, None]
    st.update(first, {"limit": 4})
    assert len(log_lines(data)) == 1
    st.close()
    assert [s["segment"]["limit"] for s in stored(data)] == [4, None]
    assert not persist.log_path(data).exists()


# --------------------------------------------------------------------------- after a kill


def connect(proc: EmulatorProcess) -> httpx.Client:
    headers = {"Authorization": f"Bearer {proc.token}"}
    return httpx.Client(base_url=proc.url, headers=headers, timeout=30)


def test_every_answered_change_survives_a_sigkill(tmp_path: Path) -> None:
    data = tmp_path / "emulator.json"
    args = ("--data", str(data), "--no-fixtures", "--list-removed")
    first = launch_emulator(*args, token=TOKEN)
    try:
        with connect(first) as api:
            made = []
            for i in range(20):
                flt = filter_on(("FR", "DE", "US")[i % 3])
                answer = api.post("/segmentation/segments", json=body(f"seg {i}", flt=flt))
                assert answer.status_code == 200
                made.append(answer.json()["segment"]["uuid"])
            for seg in made[:6]:
                path = f"/segmentation/segments/{seg}"
                assert api.put(path, json={"name": f"renamed {seg}", "limit": 5}).is_success
            for seg in made[6:10]:
                path = f"/segmentation/segments/{seg}"
                assert api.request("DELETE", path, json={}).is_success
            before = api.get("/segmentation/segments/list").json()["segments"]
            models = api.get("/storage/models/list").json()["models"]
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.stop()
    assert first.process.returncode == -signal.SIGKILL
    assert stored(data) == []  # everything is in the log, which nobody folded
    assert len(log_lines(data)) == 30

    with launch_emulator(*args, token=TOKEN) as second, connect(second) as api:
        assert not persist.log_path(data).exists()  # folded at start
        assert len(stored(data)) == 20
        assert api.get("/segmentation/segments/list").json()["segments"] == before
        assert api.get("/storage/models/list").json()["models"] == models
        assert sum(s["deletedAt"] is not None for s in before) == 4
        assert sum(s["limit"] == 5 for s in before) == 6


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    data = tmp_path / "live" / "emulator.json"
    data.parent.mkdir()
    st = open_store(data, fixtures=False)
    made = [st.create(body(name))["uuid"] for name in ("a", "b", "c")]
    st.update(made[0], {"name": "a2"})
    expected = st.raw_segments()
    for n, tail in enumerate((b'{"segment": {"uuid": "', b"\x00\x00\x00", b"not json\n")):
        copy = killed_copy(data, tmp_path / f"killed{n}")
        with persist.log_path(copy).open("ab") as log:
            log.write(tail)
        again = open_store(copy, fixtures=False)
        assert again.raw_segments() == expected
        assert not persist.log_path(copy).exists()
        assert [s["segment"]["name"] for s in stored(copy)] == ["a2", "b", "c"]
    st.close()


def test_a_log_folded_twice_gives_the_same_file(tmp_path: Path) -> None:
    """A kill between the data file's rename and the log's removal: the log is replayed again."""
    data = tmp_path / "live" / "emulator.json"
    data.parent.mkdir()
    st = open_store(data)
    seg = st.create(body("x"))["uuid"]
    st.update(seg, {"name": "y"})
    st.delete(seg)
    st.create(body("z", "contacts"))
    copy = killed_copy(data, tmp_path / "killed")
    log = persist.log_path(copy).read_bytes()
    open_store(copy).close()
    folded = copy.read_text()
    persist.log_path(copy).write_bytes(log)
    again = open_store(copy)
    assert copy.read_text() == folded
    assert again.raw_segments() == st.raw_segments()
    st.close()
    assert data.read_text() == folded


def test_a_log_without_its_data_file_is_thrown_away(tmp_path: Path) -> None:
    data = tmp_path / "emulator.json"
    st = open_store(data, fixtures=False)
    st.create(body("old"))
    data.unlink()  # the user resets the workspace
    fresh = open_store(data, fixtures=False)
    assert fresh.raw_segments() == []
    assert not persist.log_path(data).exists()
    assert stored(data) == []


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["not json", "{}"], "cannot read emulator change log: line 1 is not JSON"),
        (['{"segment": {"uuid": "x"}}'], "emulator change log holds a malformed segment"),
    ],
)
def test_a_corrupt_log_is_an_error_and_nothing_is_written(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    data = tmp_path / "emulator.json"
    open_store(data).close()
    written = data.read_text()
    log = persist.log_path(data)
    log.write_text("".join(line + "\n" for line in lines))
    with pytest.raises(EmulatorError, match=message) as info:
        open_store(data)
    assert info.value.path == str(log)
    assert data.read_text() == written
    assert log.read_text() == "".join(line + "\n" for line in lines)


def test_a_corrupt_log_is_a_one_line_error_of_the_command(tmp_path: Path) -> None:
    data = tmp_path / "emulator.json"
    open_store(data).close()
    log = persist.log_path(data)
    log.write_text("garbage\n{}\n")
    result = subprocess.run(
        [sys.executable, "-m", "segsync", "emulator", "--data", str(data), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {log}: cannot read emulator change log: line 1 ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


# --------------------------------------------------------------------------- indexes


def check_against_a_scan(st: Store, list_removed: bool) -> None:
    """Every indexed answer equals a brute-force scan over the raw segments."""
    raw = st.raw_segments()
    for model in [*MODELS.values(), str(uuid.uuid4()), None]:
        scanned = [
            s
            for s in raw
            if (list_removed or s["deletedAt"] is None)
            and (model is None or s["modelUuid"] == model)
        ]
        assert st.list_segments(model) == scanned
    for model in st.models():
        live = [s for s in raw if s["deletedAt"] is None and s["modelUuid"] == model["uuid"]]
        assert model["segmentsCount"] == len(live)
        assert st.model(model["uuid"])["segmentsCount"] == len(live)


def expected_slug(name: str, taken: set[str]) -> str:
    base = slug_base(name)
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}_{n}", n + 1
    return slug


NAMES = ("a", "a 2", "a_2", "A!", "b", "b_3", "c")
COUNTRIES = ("FR", "DE", "US", "JP")


def random_step(st: Store, rng: random.Random) -> None:
    raw = st.raw_segments()
    known = [s["uuid"] for s in raw]
    target = rng.choice(known) if known and rng.random() < 0.9 else str(uuid.uuid4())
    roll = rng.random()
    try:
        if roll < 0.4:
            model = rng.choice([*MODELS, "unknown"])
            request = {
                "name": rng.choice(NAMES),
                "modelUuid": MODELS.get(model, str(uuid.uuid4())),
                "filter": filter_on(rng.choice(COUNTRIES)),
            }
            made = st.create(request)
            assert made["slug"] == expected_slug(request["name"], {s["slug"] for s in raw})
        elif roll < 0.65:
            change: dict[str, Any] = rng.choice(
                [
                    {"name": rng.choice(NAMES)},
                    {"limit": rng.randint(1, 50)},
                    {"filter": filter_on(rng.choice(COUNTRIES))},
                    {"modelUuid": MODELS["contacts"]},  # a model cannot change: refused
                ]
            )
            st.update(target, change)
        elif roll < 0.85:
            st.delete(target)
        elif roll < 0.95 and target in known:
            st.set_linked_to_workflow(target, rng.random() < 0.3)
        else:
            st.get(target)
    except HttpError:
        pass


@pytest.mark.parametrize("list_removed", [False, True])
@pytest.mark.parametrize("seed", [1, 2])
def test_model_indexes_agree_with_a_scan_through_random_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, list_removed: bool
) -> None:
    monkeypatch.setattr(store, "FOLD_MIN_LINES", 10)  # folds while running happen too
    rng = random.Random(seed)
    data = tmp_path / "emulator.json"
    st = open_store(data, list_removed=list_removed)
    for step in range(150):
        random_step(st, rng)
        check_against_a_scan(st, list_removed)
        if step % 50 == 49 and persist.log_path(data).exists():
            # what a restart after a kill would see: the same segments, the same indexes
            copy = killed_copy(data, tmp_path / f"killed{step}")
            after_kill = open_store(copy, list_removed=list_removed)
            assert after_kill.raw_segments() == st.raw_segments()
            check_against_a_scan(after_kill, list_removed)
    st.close()
    again = open_store(data, list_removed=list_removed)
    assert again.raw_segments() == st.raw_segments()
    check_against_a_scan(again, list_removed)
    for _ in range(30):
        random_step(again, rng)
        check_against_a_scan(again, list_removed)


def test_list_keeps_creation_order_across_models_and_removals() -> None:
    st = Store(CATALOG, StoreOptions(fixtures=False))
    made = [
        st.create(body(f"s{i}", "companies" if i % 2 else "contacts"))["uuid"] for i in range(8)
    ]
    st.delete(made[3])
    st.delete(made[4])
    assert [s["uuid"] for s in st.list_segments()] == [u for u in made if u not in made[3:5]]
    contacts = [s["uuid"] for s in st.list_segments(MODELS["contacts"])]
    assert contacts == [made[0], made[2], made[6]]
