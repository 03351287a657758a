"""Digests of emitted records, so that a run can tell new, updated and unchanged apart.

Strava has no ``updated_at`` and the targets report no counts, so the tap keeps, in the
activities state, a digest of every activity of the look-back window:
``{"<id>": ["<start_date>", "<digest>"]}``. The next run re-reads that window; a record
whose id is missing from the map is *new*, one whose digest differs is *updated*, one
with the same digest is a mere re-read. The run-tally mapper (``strava_notify``) reads the
map from the first ``STATE`` message a run emits and classifies records with the same
:func:`record_digest`.
"""

from __future__ import annotations

import hashlib
import json
import typing as t

DIGESTS_KEY = "digests"

# Fields that describe the sync, not the activity: a change there is not an update.
IGNORED_FIELDS = frozenset({"athlete_id"})


def record_digest(record: t.Mapping[str, t.Any], properties: t.Iterable[str]) -> str:
    """A short digest of the record's schema fields (canonical JSON, sorted keys)."""
    canonical = {
        name: record.get(name) for name in sorted(properties) if name not in IGNORED_FIELDS
    }
    payload = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def classify(
    record: t.Mapping[str, t.Any],
    properties: t.Iterable[str],
    previous: t.Mapping[str, t.Any] | None,
) -> str:
    """``"new"``, ``"updated"`` or ``"unchanged"`` against a previous digest map."""
    entry = (previous or {}).get(str(record.get("id")))
    if not entry:
        return "new"
    return "unchanged" if entry[1] == record_digest(record, properties) else "updated"
