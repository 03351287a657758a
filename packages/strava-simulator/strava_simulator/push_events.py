"""Which push events a change of the simulated data causes, and what they carry.

Strava pushes an event when an activity is created or deleted, when its title, type or
privacy changes, and when an athlete revokes the application
(``shared/docs/strava-export-and-events.md``, 2.3). The rules live here, as pure functions
of the summaries before and after a change, so that the simulator, the API's own ``PUT``
and the control endpoints all cause the same events:

* ``updates`` is ``{}`` for create and delete; for an update it holds ``title``, ``type``
  and ``private`` (the *string* ``"true"``/``"false"``), several keys in one event if one
  save changed several fields; other fields (description, gear, ...) cause no event;
* an application without ``activity:read_all`` cannot see "Only You" activities, so it gets
  ``delete`` when an activity goes private and ``create`` when it goes public, and nothing
  about an activity that stays private (Strava documents the first two; the third follows
  from them and is this simulator's choice);
* a revocation is ``object_type "athlete"``, ``aspect_type "update"``,
  ``updates {"authorized": "false"}``.
"""

from __future__ import annotations

from typing import Any

JSONDict = dict[str, Any]
#: (aspect_type, updates) of one event, before the subscription and clock fill in the rest.
EventSpec = tuple[str, dict[str, str]]
DEAUTHORIZED: dict[str, str] = {"authorized": "false"}


def is_private(summary: JSONDict) -> bool:
    """Whether an activity is "Only You" (``private`` follows ``visibility`` in the store)."""
    return bool(summary.get("private")) or summary.get("visibility") == "only_me"


def _sport(summary: JSONDict) -> str:
    return str(summary.get("sport_type") or summary.get("type") or "")


def update_keys(before: JSONDict, after: JSONDict, *, sees_private: bool) -> dict[str, str]:
    """The ``updates`` of an activity edit (empty: the edit causes no update event).

    ``type`` carries the new ``sport_type``: Strava's docs predate sport types and do not
    say which of the two fields the value is; a change of either sends it.
    """
    updates: dict[str, str] = {}
    if after.get("name") != before.get("name"):
        updates["title"] = str(after.get("name") or "")
    if _sport(after) != _sport(before) or after.get("type") != before.get("type"):
        updates["type"] = _sport(after)
    if sees_private and is_private(after) != is_private(before):
        updates["private"] = "true" if is_private(after) else "false"
    return updates


def activity_events(
    aspect: str, before: JSONDict | None, after: JSONDict | None, *, sees_private: bool
) -> list[EventSpec]:
    """The events of one change of an activity, as the application would receive them.

    ``aspect`` is the change the store made (``create``, ``update`` or ``delete``);
    ``sees_private`` says whether the athlete granted ``activity:read_all``.
    """
    if aspect == "create" and after is not None:
        return [] if is_private(after) and not sees_private else [("create", {})]
    if aspect == "delete" and before is not None:
        return [] if is_private(before) and not sees_private else [("delete", {})]
    if aspect != "update" or before is None or after is None:
        return []
    if not sees_private:
        was, now = is_private(before), is_private(after)
        if was and now:
            return []
        if now:
            return [("delete", {})]
        if was:
            return [("create", {})]
    updates = update_keys(before, after, sees_private=sees_private)
    return [("update", updates)] if updates else []


def event_body(
    *,
    object_type: str,
    object_id: int,
    aspect_type: str,
    updates: dict[str, str],
    owner_id: int,
    subscription_id: int,
    event_time: int,
) -> JSONDict:
    """An event as Strava posts it, keys in the order of the documented example."""
    return {
        "aspect_type": aspect_type,
        "event_time": int(event_time),
        "object_id": int(object_id),
        "object_type": object_type,
        "owner_id": int(owner_id),
        "subscription_id": int(subscription_id),
        "updates": dict(updates),
    }
