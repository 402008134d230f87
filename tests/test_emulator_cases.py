"""The emulator refuses, over HTTP, every invalid spec case that can be sent as a request body,
and accepts the bodies segsync builds from the example specs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from segsync.canonical import to_wire
from segsync.emulator.server import Emulator
from segsync.specs import load_specs
from segsync.yamlfile import load_document

ROOT = Path(__file__).parent.parent
CASES = ROOT / "tests" / "cases" / "invalid"

# Rules segsync applies to spec files that are not properties of a request body.
SPEC_FILE_RULES = {
    "bad-id",  # `id` is segsync's own key
    "protect-yes",  # `protect` is segsync's own key
    "column-slugs-unmanaged",  # valid in the API; segsync does not manage it
    "name-with-spaces",  # segsync policy for names
    "reserved-name",  # segsync refuses the name plays use
}


def _sendable_cases() -> list[Path]:
    cases = []
    for case in sorted(CASES.glob("*.yaml")):
        doc, _ = load_document(case.read_bytes(), case.name)
        if doc is not None and case.stem not in SPEC_FILE_RULES:
            cases.append(case)
    return cases


def _body(raw: dict[str, Any], companies: str) -> dict[str, Any]:
    body = {k: v for k, v in raw.items() if k not in ("id", "protect", "model")}
    if "model" in raw and "modelUuid" not in raw:
        body["modelUuid"] = companies if raw["model"] == "companies" else raw["model"]
    return body


def _model_uuid(emu: Emulator, slug: str) -> str:
    return next(m["uuid"] for m in emu.catalog.models if m["slug"] == slug and not m["deletedAt"])


def _client(emu: Emulator) -> httpx.Client:
    return httpx.Client(base_url=emu.url, headers={"Authorization": f"Bearer {emu.token}"})


def test_most_cases_can_be_sent() -> None:
    assert len(_sendable_cases()) >= 30


@pytest.mark.parametrize("case", _sendable_cases(), ids=lambda p: p.stem)
def test_invalid_case_is_refused(case: Path, empty_emulator: Emulator) -> None:
    doc, _ = load_document(case.read_bytes(), case.name)
    assert doc is not None
    body = _body(doc.value, _model_uuid(empty_emulator, "companies"))
    with _client(empty_emulator) as api:
        response = api.post("/segmentation/segments", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["reason"] in ("invalidFilter", "modelNotFound")
        assert response.json()["errorMessage"]
        assert api.get("/segmentation/segments/list").json() == {"segments": []}


def _expected_field(case: Path) -> str | None:
    """The dotted path segsync's .expected names for the case's first error, if any."""
    first = case.with_suffix(".expected").read_text(encoding="utf-8").splitlines()[0]
    message = first.split(": ", 1)[1]  # after "<file>:<line>:<col>"
    found = re.match(r"([A-Za-z][\w.\[\]]*): ", message)
    return found.group(1) if found else None


@pytest.mark.parametrize(
    "case", [c for c in _sendable_cases() if _expected_field(c)], ids=lambda p: p.stem
)
def test_refusal_names_the_place_segsync_names(case: Path, empty_emulator: Emulator) -> None:
    """The emulator's own checks and segsync's validator agree on where the problem is."""
    field = _expected_field(case)
    doc, _ = load_document(case.read_bytes(), case.name)
    assert doc is not None
    body = _body(doc.value, _model_uuid(empty_emulator, "companies"))
    with _client(empty_emulator) as api:
        message = api.post("/segmentation/segments", json=body).json()["errorMessage"]
    assert any(part.startswith(field) for part in message.split("; ")), (field, message)


def test_example_payloads_are_accepted(empty_emulator: Emulator) -> None:
    specs = load_specs(ROOT / "segments")
    uuids: dict[str, str] = {}
    with _client(empty_emulator) as api:
        # referenced specs first: the examples reference sales/icp only
        for spec in sorted(specs, key=lambda s: (bool(s.refs), s.id)):
            body = to_wire(spec.managed, ref_uuids=uuids)
            body["modelUuid"] = _model_uuid(empty_emulator, str(spec.model))
            response = api.post("/segmentation/segments", json=body)
            assert response.status_code == 200, response.text
            uuids[spec.id] = response.json()["segment"]["uuid"]
        listed = api.get("/segmentation/segments/list").json()["segments"]
    assert sorted(s["name"] for s in listed) == sorted(s.name for s in specs)
    assert all(s["recordsCount"] > 0 for s in listed), [
        (s["name"], s["recordsCount"]) for s in listed
    ]
