r"""The CSV files of a bulk export archive: ``activities.csv`` (101 columns) and the small ones.

Strava writes ``activities.csv`` in the account's language, with five column names that occur
twice, numbers widened from 32-bit floats (``3322.949951171875`` for 3322.95 m), empty text
cells as ``""`` and empty numeric cells as nothing, ``\n`` line ends, and quotes only where
needed (``../shared/docs/strava-export-and-events.md`` Part 1, checked against the
geo-activity-playground testdata export). This module maps one simulated activity to such a
row, consistent with what the simulator's API answers for the same activity.
"""

from __future__ import annotations

import itertools
import struct
import time
from collections.abc import Sequence
from typing import Any

from strava_simulator.catalog import RUN_TYPES, SPORTS
from strava_simulator.timeutil import parse_iso

JSONDict = dict[str, Any]

#: The current English header, in Strava's order (101 columns, 2026-02).
ACTIVITY_COLUMNS_EN: tuple[str, ...] = (
    "Activity ID", "Activity Date", "Activity Name", "Activity Type", "Activity Description",
    "Elapsed Time", "Distance", "Max Heart Rate", "Relative Effort", "Commute",
    "Activity Private Note", "Activity Gear", "Filename", "Athlete Weight", "Bike Weight",
    "Elapsed Time", "Moving Time", "Distance", "Max Speed", "Average Speed", "Elevation Gain",
    "Elevation Loss", "Elevation Low", "Elevation High", "Max Grade", "Average Grade",
    "Average Positive Grade", "Average Negative Grade", "Max Cadence", "Average Cadence",
    "Max Heart Rate", "Average Heart Rate", "Max Watts", "Average Watts", "Calories",
    "Max Temperature", "Average Temperature", "Relative Effort", "Total Work", "Number of Runs",
    "Uphill Time", "Downhill Time", "Other Time", "Perceived Exertion", "Type", "Start Time",
    "Weighted Average Power", "Power Count", "Prefer Perceived Exertion",
    "Perceived Relative Effort", "Commute", "Total Weight Lifted", "From Upload",
    "Grade Adjusted Distance", "Weather Observation Time", "Weather Condition",
    "Weather Temperature", "Apparent Temperature", "Dewpoint", "Humidity", "Weather Pressure",
    "Wind Speed", "Wind Gust", "Wind Bearing", "Precipitation Intensity", "Sunrise Time",
    "Sunset Time", "Moon Phase", "Bike", "Gear", "Precipitation Probability",
    "Precipitation Type", "Cloud Cover", "Weather Visibility", "UV Index", "Weather Ozone",
    "Jump Count", "Total Grit", "Average Flow", "Flagged", "Average Elapsed Speed",
    "Dirt Distance", "Newly Explored Distance", "Newly Explored Dirt Distance",
    "Activity Count", "Total Steps", "Carbon Saved", "Pool Length", "Training Load",
    "Intensity", "Average Grade Adjusted Pace", "Timer Time", "Total Cycles", "Recovery",
    "With Pet", "Competition", "Long Run", "For a Cause", "With Kid", "Downhill Distance",
    "Media",
)  # fmt: skip
#: German names of the English columns (geo-activity-playground's mapping of real German
#: exports). ``With Kid`` and ``Downhill Distance`` have no known German name: the two values
#: here are the simulator's guesses.
GERMAN_NAMES: dict[str, str] = {
    "Activity ID": "Aktivitäts-ID", "Activity Date": "Aktivitätsdatum",
    "Activity Name": "Name der Aktivität", "Activity Type": "Aktivitätsart",
    "Activity Description": "Aktivitätsbeschreibung", "Elapsed Time": "Verstrichene Zeit",
    "Distance": "Distanz", "Max Heart Rate": "Max. Herzfrequenz",
    "Relative Effort": "Relative Leistung", "Commute": "Pendeln",
    "Activity Private Note": "Hinweis zur Privatsphäre für Aktivitäten",
    "Activity Gear": "Aktivitätsausrüstung", "Filename": "Dateiname",
    "Athlete Weight": "Sportlergewicht", "Bike Weight": "Fahrradgewicht",
    "Moving Time": "Bewegungszeit", "Max Speed": "Höchstgeschw.",
    "Average Speed": "Durchschnittliche Geschwindigkeit", "Elevation Gain": "Höhenzunahme",
    "Elevation Loss": "Höhenunterschied", "Elevation Low": "Min. Höhe",
    "Elevation High": "Max. Höhe", "Max Grade": "Max. Steigung",
    "Average Grade": "Durchschnittliche Steigung",
    "Average Positive Grade": "Durchschnittliche positive Steigung",
    "Average Negative Grade": "Durchschnittliche negative Steigung",
    "Max Cadence": "Max. Tritt-/Schrittfrequenz",
    "Average Cadence": "Durchschnittliche Trittfrequenz",
    "Average Heart Rate": "Durchschnittliche Herzfrequenz", "Max Watts": "Max. Watt",
    "Average Watts": "Durchschnittliche Watt", "Calories": "Kalorien",
    "Max Temperature": "Max. Temperatur", "Average Temperature": "Durchschnittliche Temperatur",
    "Total Work": "Gesamtarbeit", "Number of Runs": "Anzahl Läufe",
    "Uphill Time": "Bergaufzeit", "Downhill Time": "Bergabzeit", "Other Time": "Andere Zeit",
    "Perceived Exertion": "Gefühlte Anstrengung", "Type": "Art", "Start Time": "Startzeit",
    "Weighted Average Power": "Gewichtete durchschnittliche Leistung",
    "Power Count": "Leistungszahl",
    "Prefer Perceived Exertion": "Gefühlte Anstrengung verwenden",
    "Perceived Relative Effort": "Gefühlte relative Leistung",
    "Total Weight Lifted": "Insgesamt gestemmtes Gewicht", "From Upload": "Von Upload",
    "Grade Adjusted Distance": "Auf Steigung angepasste Distanz",
    "Weather Observation Time": "Wetterbeobachtungszeit", "Weather Condition": "Wetterlage",
    "Weather Temperature": "Wetter: Temperatur", "Apparent Temperature": "Scheinbare Temperatur",
    "Dewpoint": "Taupunkt", "Humidity": "Luftfeuchtigkeit", "Weather Pressure": "Wetter: Druck",
    "Wind Speed": "Windgeschwindigkeit", "Wind Gust": "Windböe", "Wind Bearing": "Windrichtung",
    "Precipitation Intensity": "Niederschlagsintensität", "Sunrise Time": "Sonnenaufgangszeit",
    "Sunset Time": "Sonnenuntergangszeit", "Moon Phase": "Mondphase", "Bike": "Fahrrad",
    "Gear": "Ausrüstung", "Precipitation Probability": "Niederschlagswahrscheinlichkeit",
    "Precipitation Type": "Niederschlagsart", "Cloud Cover": "Wolkendecke",
    "Weather Visibility": "Wetter: Sichtbarkeit", "UV Index": "UV-Index",
    "Weather Ozone": "Wetter: Ozon", "Jump Count": "Sprunganzahl",
    "Total Grit": "Schwierigkeit insgesamt", "Average Flow": "Durchschnittlicher Flow",
    "Flagged": "Markiert",
    "Average Elapsed Speed": "Durchschnittsgeschwindigkeit im Aufzeichnungszeitraum",
    "Dirt Distance": "Auf Schotter zurückgelegte Distanz",
    "Newly Explored Distance": "Neu getestete Distanz",
    "Newly Explored Dirt Distance": "Neu getestete Schotterdistanz",
    "Activity Count": "Aktivitätsanzahl", "Total Steps": "Schritte insgesamt",
    "Carbon Saved": "Eingesparte CO₂-Emissionen", "Pool Length": "Pool-Länge",
    "Training Load": "Trainingsbelastung", "Intensity": "Intensität",
    "Average Grade Adjusted Pace": "Durchschnittliches auf Steigung angepasstes Tempo",
    "Timer Time": "Stoppuhr-Zeit", "Total Cycles": "Zyklen gesamt", "Recovery": "Regeneration",
    "With Pet": "Mit Haustier", "Competition": "Wettbewerb", "Long Run": "Langer Lauf",
    "For a Cause": "Für einen guten Zweck", "With Kid": "Mit Kind",
    "Downhill Distance": "Bergab-Distanz", "Media": "Medien",
}  # fmt: skip
ACTIVITY_COLUMNS_DE: tuple[str, ...] = tuple(GERMAN_NAMES[name] for name in ACTIVITY_COLUMNS_EN)
HEADERS = {"en": ACTIVITY_COLUMNS_EN, "de": ACTIVITY_COLUMNS_DE}
#: Positions (0-based) of the columns the simulator fills.
COL = {
    "id": 0, "date": 1, "name": 2, "type": 3, "description": 4, "elapsed_int": 5,
    "distance_display": 6, "max_hr_1": 7, "relative_effort_1": 8, "commute_text": 9,
    "private_note": 10, "gear": 11, "filename": 12, "athlete_weight": 13, "bike_weight": 14,
    "elapsed": 15, "moving": 16, "distance": 17, "max_speed": 18, "average_speed": 19,
    "elevation_gain": 20, "elevation_loss": 21, "elevation_low": 22, "elevation_high": 23,
    "max_cadence": 28, "average_cadence": 29,
    "max_hr": 30, "average_hr": 31, "max_watts": 32, "average_watts": 33, "calories": 34,
    "max_temp": 35, "average_temp": 36, "relative_effort": 37, "total_work": 38,
    "perceived_exertion": 43,
    "weighted_power": 46, "prefer_perceived": 48, "commute_flag": 50, "from_upload": 52,
    "grade_adjusted_distance": 53, "bike": 68, "shoe": 69, "flagged": 79,
    "average_elapsed_speed": 80, "dirt_distance": 81, "grade_adjusted_pace": 90, "media": 100,
}  # fmt: skip
#: Text columns: Strava writes an empty one as ``""`` (numeric ones are left blank).
TEXT_COLUMNS = frozenset({2, 4, 10, 100})
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: ``Activity Type`` in German exports. ``Radfahrt``, ``Spaziergang`` and ``Wanderung`` are
#: seen in real exports; the others are the simulator's guesses at Strava's wording.
GERMAN_TYPES = {
    "Run": "Lauf", "Trail Run": "Traillauf", "Ride": "Radfahrt", "Gravel Ride": "Gravel-Radfahrt",
    "Virtual Ride": "Virtuelle Radfahrt", "Swim": "Schwimmen", "Walk": "Spaziergang",
    "Hike": "Wanderung", "Weight Training": "Krafttraining", "Yoga": "Yoga", "Padel": "Padel",
    "Workout": "Training",
}  # fmt: skip
#: Grade-adjusted distance over distance for runs (the simulator's splits use the same ratio).
GRADE_ADJUSTED_RATIO = 1.02

#: Headers of the small CSVs of a real export (geo-activity-playground testdata, 2024-08).
SMALL_CSV_HEADERS: dict[str, str] = {
    "applications.csv": "App Name,App Description",
    "blocks.csv": "Blocked Athlete ID,Created At",
    "clubs.csv": "Club Name,Club Description,Club Type,Club Sport,City,Country,State,"
    "Club Website,Cover Photo,Club Picture",
    "comments.csv": "Comment Date,Comment",
    "components.csv": "Bike Name,Component Type,Component Brand,Component Model",
    "connected_apps.csv": "Enabled Application Name",
    "contacts.csv": "Athlete ID,Contact Type,Contact,Contact Source,Contact Name",
    "events.csv": "Event Title,Event Description,Start Time",
    "favorites.csv": "Follower Athlete ID,Following Athlete ID,Favorite Status",
    "flags.csv": "Category,Flagged Type,Flagged ID,Comments,Created At",
    "followers.csv": "Follower Athlete ID,Follow Status,Created At",
    "following.csv": "Following Athlete ID,Follow Status,Created At",
    "global_challenges.csv": "Join Date,Name,Completed",
    "goals.csv": "Goal Type,Activity Type,Goal,Start Date,End Date,Segment ID,Time Period,"
    "Interval Time",
    "group_challenges.csv": "Join Date,Name,Completed",
    "local_legend_segments.csv": "Segment ID,Segment Name",
    "logins.csv": "IP Address,Login Source,Login Date & Time",
    "media.csv": "Media Filename,Media Caption",
    "memberships.csv": "Join Date,Club Name",
    "metering.csv": "Promotion Seen,Timestamp",
    "mobile_device_identifiers.csv": "Mobile Device ID",
    "orders.csv": "Order Number,Plan,Total Price,Created At",
    "posts.csv": "Post Date,Post Summary,Post,Post URL,Photos",
    "privacy_zones.csv": "Address,Radius,Latitude & Longitude",
    "reactions.csv": "Reaction Date,Reaction Type,Parent Type,Parent ID",
    "routes.csv": "Route Name,Route Filename",
    "segments.csv": "Segment Name,Activity ID,Starting Latitude,Starting Longitude,"
    "Ending Latitude,Ending Longitude",
    "starred_routes.csv": "Date,Route ID",
    "starred_segments.csv": "Date,Segment ID",
    "support_tickets.csv": "Ticket ID,Ticket Created At,Message Content",
}
PROFILE_HEADER = (
    "Athlete ID", "Email Address", "First Name", "Last Name", "Sex", "Description", "Weight",
    "City", "State", "Country", "Health Consent Status", "Date of Health Consent approval/denial",
)  # fmt: skip
BIKES_HEADER = ("Bike Name", "Bike Brand", "Bike Model", "Bike Default Sport Types")
SHOES_HEADER = ("Shoe Name", "Shoe Brand", "Shoe Model", "Shoe Default Sport Types")

#: A cell: None = blank, "" = ``""`` (an empty text), anything else its text.
Cell = str | None


def f32(value: float) -> str:
    """A number as Strava's exporter prints it: the 32-bit float, widened (``1428.0``)."""
    widened: float = struct.unpack("<f", struct.pack("<f", float(value)))[0]
    return repr(widened)


def activity_date(epoch: int, language: str) -> str:
    """``Activity Date`` (UTC): ``May 29, 2022, 3:53:35 PM`` or ``29.05.2022, 15:53:35``."""
    t = time.gmtime(epoch)
    if language == "de":
        return (
            f"{t.tm_mday:02d}.{t.tm_mon:02d}.{t.tm_year}, "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        )
    hour12 = t.tm_hour % 12 or 12
    half = "AM" if t.tm_hour < 12 else "PM"
    return (
        f"{MONTHS[t.tm_mon - 1]} {t.tm_mday}, {t.tm_year}, "
        f"{hour12}:{t.tm_min:02d}:{t.tm_sec:02d} {half}"
    )


def activity_type_label(sport_type: str, language: str) -> str:
    """The ``Activity Type`` display value (``Trail Run``, ``Weight Training``, ``Radfahrt``)."""
    sport = SPORTS.get(sport_type)
    label = sport.label if sport else sport_type
    return GERMAN_TYPES.get(label, label) if language == "de" else label


def display_distance(metres: float, language: str) -> str:
    """Column 6: kilometres with two decimals (a decimal comma in German)."""
    text = f"{metres / 1000:.2f}"
    return text.replace(".", ",") if language == "de" else text


def _opt(value: Any) -> Cell:
    return None if value is None else f32(float(value))


def _gear_number(gear_id: str) -> str:
    """``b12345678`` -> ``12345678.0`` (the ``Bike``/``Gear`` columns hold bare numbers)."""
    return f"{int(gear_id[1:])}.0"


def activity_row(
    detail: JSONDict,
    *,
    gear: dict[str, JSONDict],
    athlete: JSONDict,
    filename: str | None,
    language: str = "en",
    streams: dict[str, list[Any]] | None = None,
) -> list[Cell]:
    """One ``activities.csv`` row from the API's detailed activity (``/activities/{id}``).

    ``streams`` (the API's ``/streams`` data by type) fill the columns Strava computes from
    the recording and the API has no field for: max cadence, elevation loss, max temperature.
    """
    row: list[Cell] = [None] * len(ACTIVITY_COLUMNS_EN)
    c = COL
    start = parse_iso(str(detail["start_date"]))
    manual = bool(detail.get("manual"))
    distance = float(detail["distance"])
    moving = int(detail["moving_time"])
    elapsed = int(detail["elapsed_time"])
    row[c["id"]] = str(int(detail["id"]))
    row[c["date"]] = activity_date(start, language)
    row[c["name"]] = str(detail.get("name") or "")
    row[c["type"]] = activity_type_label(str(detail["sport_type"]), language)
    row[c["description"]] = str(detail.get("description") or "")
    row[c["elapsed_int"]] = str(elapsed)
    row[c["distance_display"]] = display_distance(distance, language)
    has_hr = bool(detail.get("has_heartrate"))
    row[c["max_hr_1"]] = _opt(detail.get("max_heartrate")) if has_hr else None
    suffer = detail.get("suffer_score")
    row[c["relative_effort_1"]] = None if suffer is None else str(int(suffer))
    row[c["commute_text"]] = "true" if detail.get("commute") else "false"
    row[c["private_note"]] = ""
    gear_id = detail.get("gear_id")
    item = gear.get(str(gear_id)) if gear_id else None
    row[c["gear"]] = None if item is None else str(item["name"])
    row[c["filename"]] = filename
    row[c["athlete_weight"]] = _opt(athlete.get("weight"))
    if item is not None and str(gear_id).startswith("b"):
        row[c["bike_weight"]] = _opt(item.get("weight"))
        row[c["bike"]] = _gear_number(str(gear_id))
    elif item is not None:
        row[c["shoe"]] = _gear_number(str(gear_id))
    row[c["elapsed"]] = f32(elapsed)
    row[c["moving"]] = f32(moving)
    row[c["distance"]] = f32(distance)
    row[c["max_speed"]] = f32(float(detail.get("max_speed") or 0.0))
    row[c["average_speed"]] = f32(float(detail.get("average_speed") or 0.0))
    row[c["elevation_gain"]] = f32(float(detail.get("total_elevation_gain") or 0.0))
    row[c["elevation_low"]] = _opt(detail.get("elev_low"))
    row[c["elevation_high"]] = _opt(detail.get("elev_high"))
    row[c["average_cadence"]] = _opt(detail.get("average_cadence"))
    if has_hr:
        row[c["max_hr"]] = _opt(detail.get("max_heartrate"))
        row[c["average_hr"]] = _opt(detail.get("average_heartrate"))
    row[c["max_watts"]] = _opt(detail.get("max_watts"))
    row[c["average_watts"]] = _opt(detail.get("average_watts"))
    row[c["calories"]] = _opt(detail.get("calories"))
    row[c["average_temp"]] = _opt(detail.get("average_temp"))
    row[c["relative_effort"]] = _opt(suffer)
    kilojoules = detail.get("kilojoules")
    row[c["total_work"]] = None if kilojoules is None else f32(float(kilojoules) * 1000)
    exertion = detail.get("perceived_exertion")
    row[c["perceived_exertion"]] = _opt(exertion)
    row[c["prefer_perceived"]] = None if exertion is None else "0.0"
    row[c["weighted_power"]] = _opt(detail.get("weighted_average_watts"))
    row[c["commute_flag"]] = "1.0" if detail.get("commute") else "0.0"
    row[c["from_upload"]] = "0.0" if manual else "1.0"
    if str(detail["sport_type"]) in RUN_TYPES and distance > 0 and moving > 0:
        adjusted = distance * GRADE_ADJUSTED_RATIO
        row[c["grade_adjusted_distance"]] = f32(adjusted)
        row[c["grade_adjusted_pace"]] = f32(adjusted / moving)
    row[c["flagged"]] = "0.0"
    if elapsed > 0:
        row[c["average_elapsed_speed"]] = f32(distance / elapsed)
    if not manual and distance > 0:
        row[c["dirt_distance"]] = "0.0"
    row[c["media"]] = ""
    if streams:
        _from_streams(row, streams)
    return row


def _from_streams(row: list[Cell], streams: dict[str, list[Any]]) -> None:
    c = COL
    if streams.get("cadence"):
        row[c["max_cadence"]] = f32(max(streams["cadence"]))
    if streams.get("temp"):
        row[c["max_temp"]] = f32(max(streams["temp"]))
    altitude = streams.get("altitude")
    if altitude:
        loss = sum(max(0.0, a - b) for a, b in itertools.pairwise(altitude))
        row[c["elevation_loss"]] = f32(loss)


def csv_line(cells: Sequence[Cell]) -> str:
    """One RFC-4180 line as Strava writes it: quotes only where needed, ``""`` for empty text."""
    out = []
    for cell in cells:
        if cell is None:
            out.append("")
        elif cell == "" or any(ch in cell for ch in ',"\n\r'):
            out.append('"' + cell.replace('"', '""') + '"')
        else:
            out.append(cell)
    return ",".join(out) + "\n"


def profile_row(athlete: JSONDict) -> list[Cell]:
    """``profile.csv``'s row for the athlete (Sex written out, as Strava does)."""
    sex = {"M": "Male", "F": "Female"}.get(str(athlete.get("sex")), "")
    return [
        str(athlete["id"]),
        f"sim_{athlete['id']}@example.com",
        str(athlete.get("firstname") or ""),
        str(athlete.get("lastname") or ""),
        sex,
        str(athlete.get("bio") or ""),
        f32(float(athlete.get("weight") or 0.0)),
        str(athlete.get("city") or ""),
        str(athlete.get("state") or ""),
        str(athlete.get("country") or ""),
        "Unknown",
        None,
    ]


def gear_rows(gear: dict[str, JSONDict], kind: str) -> list[list[Cell]]:
    """``bikes.csv`` (kind ``b``) or ``shoes.csv`` (kind ``g``) rows, by gear id."""
    rows: list[list[Cell]] = []
    for gear_id in sorted(gear):
        if not gear_id.startswith(kind):
            continue
        item = gear[gear_id]
        rows.append(
            [
                str(item["name"]),
                str(item.get("brand_name") or ""),
                str(item.get("model_name") or ""),
                "",
            ]
        )
    return rows
