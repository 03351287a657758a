"""Which of Strava's model each stream follows, and the model's fields it leaves out, and why.

Strava's model is its swagger (as stravalib generates ``strava_model.py`` from it) plus the
undocumented fields real answers carry (stravalib's ``model.py``). A pinned copy of both
lives in ``tests/fixtures/strava_reference/``; ``tests/test_schema_coverage.py`` fails when
one of the model's fields is neither declared by the stream nor listed here with a reason.
A field listed here is not lost when Strava sends it: it lands in the stream's
``_unknown_fields`` column (see :mod:`tap_strava.conform`). ``docs/schema.md`` shows both.

Paths are dotted for objects (``map.polyline``) and use ``[]`` for the items of a list
(``clubs[].description``).
"""

from __future__ import annotations

#: Per stream: the Strava model of each object the stream declares ("" is the record).
#: Lists of objects in ``activity_details`` (laps, splits, efforts) are declared as open
#: JSON values and kept whole, so their items are not compared.
STREAM_MODELS: dict[str, dict[str, tuple[str, ...]]] = {
    "activities": {
        "": ("SummaryActivity",),
        "athlete": ("MetaAthlete",),
        "map": ("PolylineMap",),
    },
    "activity_details": {
        "": ("DetailedActivity",),
        "athlete": ("MetaAthlete",),
        "map": ("PolylineMap",),
        "gear": ("SummaryGear",),
    },
    "athlete": {
        "": ("DetailedAthlete",),
        "clubs[]": ("SummaryClub",),
        "bikes[]": ("SummaryGear",),
        "shoes[]": ("SummaryGear",),
    },
    "athlete_stats": {
        "": ("ActivityStats",),
        **{
            f"{period}_{sport}_totals": ("ActivityTotal",)
            for period in ("recent", "ytd", "all")
            for sport in ("ride", "run", "swim")
        },
    },
    "gear": {"": ("DetailedGear",)},
    "laps": {
        "": ("Lap",),
        "activity": ("MetaActivity",),
        "athlete": ("MetaAthlete",),
    },
    "activity_zones": {
        "": ("ActivityZone",),
        "distribution_buckets[]": ("TimedZoneRange",),
    },
    # One record per activity: each stream type's data is a column; the series'
    # original_size, resolution and series_type are the same for all of them.
    "activity_streams": {"": ("StreamSet", "BaseStream")},
}

#: The reason given for a field stravalib's model.py knows that Strava does not send today.
#: ``tests/test_schema_coverage.py`` checks the claim against the recorded answer.
NOT_IN_RECORDED_ANSWER = (
    "Not in Strava's answer as recorded in 2025 (tests/fixtures/strava-samples); stravalib "
    "keeps it from older answers. Kept in _unknown_fields if Strava sends it."
)

_DETAIL_ONLY = "Only in the detailed answer: a column of activity_details."

#: Per stream: the fields of Strava's model it does not declare, with the reason.
NOT_DECLARED: dict[str, dict[str, str]] = {
    "activities": {
        "map.polyline": _DETAIL_ONLY + " The list sends summary_polyline only.",
    },
    "activity_details": {
        "embed_token": (
            "A capability: whoever holds it can embed the activity. The tap drops it "
            "from every record (never stored, not in _unknown_fields)."
        ),
        **dict.fromkeys(
            (
                "guid",
                "instagram_primary_photo",
                "partner_brand_tag",
                "partner_logo_url",
                "private_note",
                "segment_leaderboard_opt_out",
                "start_latitude",
                "start_longitude",
            ),
            NOT_IN_RECORDED_ANSWER,
        ),
    },
    "athlete": {
        **dict.fromkeys(
            (
                "admin",
                "agreed_to_terms",
                "approve_followers",
                "dateofbirth",
                "description",
                "email",
                "email_facebook_twitter_friend_joins",
                "email_kom_lost",
                "email_language",
                "email_send_follower_notices",
                "facebook_sharing_enabled",
                "follower_request_count",
                "global_privacy",
                "instagram_username",
                "max_heartrate",
                "membership",
                "offer_in_app_payment",
                "owner",
                "plan",
                "premium_expiration_date",
                "profile_original",
                "receive_comment_emails",
                "receive_follower_feed_emails",
                "receive_kudos_emails",
                "receive_newsletter",
                "sample_race_distance",
                "sample_race_time",
                "subscription_permissions",
                "super_user",
            ),
            NOT_IN_RECORDED_ANSWER,
        ),
        "clubs[].club_type": NOT_IN_RECORDED_ANSWER,
        "clubs[].description": NOT_IN_RECORDED_ANSWER,
    },
}
