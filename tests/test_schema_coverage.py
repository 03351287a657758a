"""Every field of Strava's model is declared by its stream, or listed with a reason.

Strava's model is pinned in ``tests/fixtures/strava_reference/strava_model.json`` (built by
``python -m devtools.strava_reference`` from stravalib's ``strava_model.py``, generated from
Strava's swagger, and ``model.py``, which adds the undocumented fields real answers carry).
The vendored ``strava_swagger.json`` names the model each endpoint returns. The reasons live
in :data:`tap_strava.schemas.strava_fields.NOT_DECLARED`. The real answers
recorded in ``tests/fixtures/strava-samples`` pin the declared fields the model lacks.
"""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest

from tap_strava.schemas.activity import ACTIVITY_SCHEMA
from tap_strava.schemas.athlete import ATHLETE_SCHEMA, ATHLETE_STATS_SCHEMA
from tap_strava.schemas.details import (
    ACTIVITY_DETAIL_SCHEMA,
    ACTIVITY_STREAMS_SCHEMA,
    GEAR_SCHEMA,
    LAP_SCHEMA,
    ZONE_SCHEMA,
)
from tap_strava.schemas.strava_fields import NOT_DECLARED, NOT_IN_RECORDED_ANSWER, STREAM_MODELS

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REFERENCE = json.loads(
    (FIXTURES / "strava_reference" / "strava_model.json").read_text(encoding="utf-8")
)
SWAGGER = json.loads(
    (FIXTURES / "strava_reference" / "strava_swagger.json").read_text(encoding="utf-8")
)
SAMPLES = FIXTURES / "strava-samples"

#: The endpoint each API stream reads (GET).
ENDPOINTS = {
    "activities": "/athlete/activities",
    "activity_details": "/activities/{id}",
    "athlete": "/athlete",
    "athlete_stats": "/athletes/{id}/stats",
    "gear": "/gear/{id}",
    "laps": "/activities/{id}/laps",
    "activity_zones": "/activities/{id}/zones",
    "activity_streams": "/activities/{id}/streams",
}

#: The tap's streams of Strava API answers, their schema and the recorded real answer.
API_STREAMS: dict[str, tuple[dict[str, t.Any], str]] = {
    "activities": (ACTIVITY_SCHEMA, "athlete_activities.json"),
    "activity_details": (ACTIVITY_DETAIL_SCHEMA, "activity.json"),
    "athlete": (ATHLETE_SCHEMA, "athlete.json"),
    "athlete_stats": (ATHLETE_STATS_SCHEMA, "athlete_stats.json"),
    "gear": (GEAR_SCHEMA, "gear.json"),
    "laps": (LAP_SCHEMA, "activity_laps.json"),
    "activity_zones": (ZONE_SCHEMA, "activity_zones.json"),
    "activity_streams": (ACTIVITY_STREAMS_SCHEMA, "activity_streams.json"),
}

#: JSON-schema types a swagger annotation may be declared as (number is wider than integer).
_TYPES = {
    "int": {"integer", "number"},
    "float": {"number"},
    "str": {"string"},
    "bool": {"boolean"},
    "datetime": {"string"},
    "date": {"string"},
}


def _properties(schema: dict[str, t.Any], path: str) -> dict[str, t.Any]:
    """The declared properties of the object at ``path`` ("" the record, "a[]" list items)."""
    node = schema
    for part in filter(None, path.split(".")):
        node = node["properties"][part.removesuffix("[]")]
        if part.endswith("[]"):
            node = node["items"]
    return t.cast("dict[str, t.Any]", node.get("properties") or {})


def _model_fields(models: tuple[str, ...]) -> dict[str, str]:
    """Field -> annotation of Strava's model: the swagger's fields and stravalib's additions."""
    fields: dict[str, str] = {}
    for model in models:
        fields.update({k: v["type"] for k, v in REFERENCE["models"][model].items()})
        fields.update(REFERENCE["undocumented"].get(model, {}))
    return fields


def _recorded(sample: str) -> list[dict[str, t.Any]]:
    """The bodies of a recorded answer, one dict per item."""
    body = json.loads((SAMPLES / sample).read_text(encoding="utf-8"))[0]["body"]
    return body if isinstance(body, list) else [body]


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _recorded_as(stream: str, path: str, field: str, types: set[str]) -> bool:
    """Whether Strava's recorded answer sends ``field`` as one of ``types`` (it beats the spec:
    ``athlete_type`` is the integer 1, not the spec's "runner")."""
    items = _recorded(API_STREAMS[stream][1])
    for part in filter(None, path.split(".")):
        items = [item.get(part) for item in items if isinstance(item.get(part), dict)]
    values = [item[field] for item in items if item.get(field) is not None]
    return bool(values) and all(_JSON_TYPES.get(type(value)) in types for value in values)


def _path(prefix: str, field: str) -> str:
    return f"{prefix}.{field}" if prefix else field


def test_every_api_stream_follows_a_model():
    assert set(STREAM_MODELS) == set(API_STREAMS)
    for stream, paths in STREAM_MODELS.items():
        for path, models in paths.items():
            assert _properties(API_STREAMS[stream][0], path), (stream, path)
            assert all(model in REFERENCE["models"] for model in models), (stream, models)


@pytest.mark.parametrize("stream", sorted(API_STREAMS))
def test_each_stream_follows_the_model_its_endpoint_returns(stream):
    """Strava's swagger names the model of each endpoint's answer (of its items for a list)."""
    answer = SWAGGER["paths"][ENDPOINTS[stream]]["get"]["responses"]["200"]["schema"]
    reference = answer.get("items", answer)["$ref"]
    assert reference.rpartition("/")[2] == STREAM_MODELS[stream][""][0]


@pytest.mark.parametrize("stream", sorted(API_STREAMS))
def test_every_model_field_is_declared_or_has_a_reason(stream):
    schema = API_STREAMS[stream][0]
    missing = []
    for path, models in STREAM_MODELS[stream].items():
        declared = _properties(schema, path)
        for field, annotation in _model_fields(models).items():
            if field not in declared and _path(path, field) not in NOT_DECLARED.get(stream, {}):
                missing.append(f"{_path(path, field)} ({annotation})")
    assert not missing, (
        f"{stream}: Strava's model has fields the schema neither declares nor lists in "
        f"tap_strava/schemas/strava_fields.py NOT_DECLARED: {', '.join(missing)}"
    )


@pytest.mark.parametrize("stream", sorted(NOT_DECLARED))
def test_every_reason_is_for_a_model_field_the_stream_lacks(stream):
    schema, sample = API_STREAMS[stream]
    for path_and_field, reason in NOT_DECLARED[stream].items():
        path, _, field = path_and_field.rpartition(".")
        assert reason.strip(), path_and_field
        assert field in _model_fields(STREAM_MODELS[stream][path]), (
            f"{stream}: {path_and_field} is not in Strava's model: drop its reason"
        )
        assert field not in _properties(schema, path), (
            f"{stream}: {path_and_field} is declared now: drop it from NOT_DECLARED"
        )
        if reason == NOT_IN_RECORDED_ANSWER:
            items = _recorded(sample)
            for part in filter(None, path.split(".")):
                items = [
                    value
                    for item in items
                    for value in (
                        item.get(part[:-2]) or [] if part.endswith("[]") else [item.get(part)]
                    )
                    if isinstance(value, dict)
                ]
            assert items, (stream, path)
            assert all(field not in item for item in items), (
                f"{stream}: the recorded answer has {path_and_field}: declare it"
            )


@pytest.mark.parametrize("stream", sorted(API_STREAMS))
def test_declared_types_follow_the_model(stream):
    schema = API_STREAMS[stream][0]
    wrong = []
    for path, models in STREAM_MODELS[stream].items():
        declared = _properties(schema, path)
        for field, annotation in _model_fields(models).items():
            if field not in declared:
                continue
            spec = declared[field]
            types = set(spec["type"] if isinstance(spec["type"], list) else [spec["type"]])
            base = annotation.removesuffix(" | None")
            if base.startswith(("Sequence[", "LatLng", "TimedZoneDistribution")) or (
                stream == "activity_streams" and path == "" and base.endswith("Stream")
            ):
                expected = {"array"}
            elif base.startswith("Literal[") or base in ("ActivityType", "SportType"):
                expected = {"string"}
            elif base in _TYPES:
                expected = _TYPES[base]
            else:  # another model: an object
                expected = {"object"}
            if not types - {"null"} <= expected and not _recorded_as(stream, path, field, types):
                wrong.append(f"{_path(path, field)}: {sorted(types)} for {annotation}")
            if base in ("datetime", "date"):
                fmt = {"datetime": "date-time", "date": "date"}[base]
                if spec.get("format") != fmt:
                    wrong.append(f"{_path(path, field)}: format {spec.get('format')} for {base}")
    assert not wrong, f"{stream}: declared types differ from Strava's model: {wrong}"


@pytest.mark.parametrize("stream", sorted(API_STREAMS))
def test_every_field_of_the_recorded_answer_is_declared(stream):
    """The real answer's fields are columns, beyond the model too (average_temp, bio, ...)."""
    schema, sample = API_STREAMS[stream]
    reasons = NOT_DECLARED.get(stream, {})
    items = _recorded(sample)
    closed = {path for path in STREAM_MODELS[stream] if "[]" not in path}
    missing = set()
    for item in items:
        for path in closed:
            node: t.Any = item
            for part in filter(None, path.split(".")):
                node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                continue
            declared = _properties(schema, path)
            missing |= {
                _path(path, key)
                for key in node
                if key not in declared and _path(path, key) not in reasons
            }
    assert not missing, f"{stream}: the recorded answer has undeclared fields: {sorted(missing)}"
