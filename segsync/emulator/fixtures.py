"""The two fixture segments an emulator starts with on ``companies`` (unless ``--no-fixtures``).

Both are linked to a workflow, so they refuse update and delete: ``GENERATED_PLAY_SEGMENT`` is
owned by a play (``fromPlay: true``), the other is a plain segment a workflow uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from segsync.emulator.data import FIXTURE_TIME, Catalog

PLAY_SEGMENT_NAME = "GENERATED_PLAY_SEGMENT"
WORKFLOW_SEGMENT_NAME = "[fixture] Churn-risk customers (linked to a workflow)"


@dataclass(frozen=True)
class Fixture:
    """One fixture segment; ``key`` derives its UUID and its last change's."""

    key: str
    name: str
    from_play: bool
    filter: dict[str, Any]
    tracking: list[str] | None


FIXTURES: tuple[Fixture, ...] = (
    Fixture(
        key="play",
        name=PLAY_SEGMENT_NAME,
        from_play=True,
        filter={
            "conjonction": "and",
            "groups": [
                {
                    "conjonction": "and",
                    "conditions": [
                        {
                            "kind": "string",
                            "columnSlug": "stage",
                            "operator": "is",
                            "values": ["opportunity"],
                        }
                    ],
                }
            ],
        },
        tracking=None,
    ),
    Fixture(
        key="workflow",
        name=WORKFLOW_SEGMENT_NAME,
        from_play=False,
        filter={
            "conjonction": "and",
            "groups": [
                {
                    "conjonction": "and",
                    "conditions": [
                        {"kind": "boolean", "columnSlug": "is_customer", "operator": "isTrue"},
                        {
                            "kind": "date",
                            "columnSlug": "last_activity_at",
                            "operator": "lowerThan",
                            "value": "2024-06-01",
                        },
                    ],
                }
            ],
        },
        tracking=["stage"],
    ),
)


def last_change(catalog: Catalog, key: str, total: int) -> dict[str, Any]:
    """The one change a fixture segment has: its first sync, that added all its records."""
    return {
        "uuid": catalog.fixture_segment_uuid(f"change-{key}"),
        "slug": f"change_{key}_1",
        "totalRecordsCount": total,
        "updatedRecordsCount": 0,
        "removedRecordsCount": 0,
        "addedRecordsCount": total,
        "unchangedRecordsCount": 0,
        "createdAt": FIXTURE_TIME,
    }
