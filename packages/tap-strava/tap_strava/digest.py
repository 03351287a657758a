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

import functools
import hashlib
import json
import typing as t

from tap_strava.wall_time import with_false_zone

DIGESTS_KEY = "digests"

# Fields that describe the sync, not the activity: a change there is not an update.
IGNORED_FIELDS = frozenset({"athlete_id"})
#: Local wall times, emitted without Strava's false ``Z`` since issue 25 and digested with
#: it, as every earlier version did: an upgrade finds the digests it stored unchanged.
WALL_TIME_FIELDS = ("start_date_local",)

#: The canonical form: ``json.dumps(..., sort_keys=True, separators=(",", ":"),
#: default=str)``, built once (``json.dumps`` with arguments builds an encoder per call).
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode


@functools.lru_cache(maxsize=64)
def _canonical_template(properties: tuple[str, ...]) -> dict[str, None]:
    """The fields a digest covers, sorted, each null: worked out once per schema."""
    return dict.fromkeys(sorted(name for name in set(properties) if name not in IGNORED_FIELDS))


def record_digest(record: t.Mapping[str, t.Any], properties: t.Iterable[str]) -> str:
    """A short digest of the record's schema fields (canonical JSON, sorted keys).

    The value is part of the state (and of the tally mapper's classification), so it must
    never change: the first 16 hex digits of SHA-256 over that canonical JSON, exactly
    as every earlier version computed it (``tests/test_digest.py`` holds it to the
    original formula). What was made cheaper is only the way there: the sorted fields
    once per schema, the canonical mapping copied and updated in C, one encoder.
    """
    template = _canonical_template(
        properties if isinstance(properties, tuple) else tuple(properties)
    )
    # The template's copy, updated from the record in C: the fields it lacks stay null.
    canonical = template.copy()
    canonical.update(record)
    for name in IGNORED_FIELDS:
        canonical.pop(name, None)
    if len(canonical) != len(template):  # keys outside the schema: only the schema's count
        get = record.get
        canonical = {name: get(name) for name in template}
    for name in WALL_TIME_FIELDS:
        if name in canonical:
            canonical[name] = with_false_zone(canonical[name])
    payload = _CANONICAL_JSON(canonical)
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
