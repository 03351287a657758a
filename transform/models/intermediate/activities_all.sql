{#-
  Every activity the pipeline holds, from every source, once per (id, athlete_id): the
  API's `activities` (and `activity_details` for what only a detail answer has), the export
  archive's `export_activities`, with confirmed deletions left out. The precedence is the
  one strava_data/merged_view.py documents for the `activities_merged` view:

  - the API wins where it has the field (a rename on Strava shows through; an API value is
    never blanked by an archive that lacks it);
  - the archive fills what the API lacks: whole activities the API never listed, and
    fields left null;
  - a deletion stays deleted: a row the reconcile flagged (`_sdc_deleted_at`) or a push
    event confirmed (`activity_deletions`) is left out, even if an archive still has it.

  Read from the raw tables, never from `activities_merged` (the events job drops that view
  every five minutes, which a dependent view would make fail). Tables that do not exist
  (an API-only or archive-only user) read as empty (macros/raw_tables.sql).

  Local time, which dates and ISO weeks come from (`local_time_rule` says which applied):
  `api` Strava's start_date_local; else the archive's own start_date_local with its
  start_date_local_rule (fit_local_timestamp, start_coordinates, athlete_timezone) where
  the archive stream has those columns; else `athlete_timezone`: the start in the
  athlete's zone (the athlete table's `timezone` if it has one, else the zone of the
  athlete's newest API activity; Strava writes "(GMT+01:00) Europe/Paris", the IANA name is
  what follows the space); else `utc`.
-#}
{%- set api = raw_columns('activities') -%}
{%- set details = raw_columns('activity_details') -%}
{%- set archive = raw_columns('export_activities') -%}
{%- set deletions = raw_columns('activity_deletions') -%}
{%- set streams = raw_columns('activity_streams') -%}
{%- set tracks = raw_columns('export_tracks') -%}
{%- set athlete = raw_columns('athlete') -%}

{#- Columns both activity sources may have: (name, type). -#}
{%- set shared = [
    ('name', 'text'),
    ('sport_type', 'text'),
    ('distance', 'double precision'),
    ('moving_time', 'bigint'),
    ('elapsed_time', 'bigint'),
    ('total_elevation_gain', 'double precision'),
    ('elev_high', 'double precision'),
    ('elev_low', 'double precision'),
    ('average_speed', 'double precision'),
    ('max_speed', 'double precision'),
    ('average_heartrate', 'double precision'),
    ('max_heartrate', 'double precision'),
    ('average_watts', 'double precision'),
    ('max_watts', 'double precision'),
    ('weighted_average_watts', 'double precision'),
    ('average_cadence', 'double precision'),
    ('suffer_score', 'double precision'),
    ('commute', 'boolean'),
] -%}

with api as (
    select
        {{ raw_value('a', api, 'id', 'bigint') }} as id,
        {{ raw_value('a', api, 'athlete_id', 'bigint') }} as athlete_id,
        {%- for name, kind in shared %}
        {{ raw_value('a', api, name, kind) }} as {{ adapter.quote(name) }},
        {%- endfor %}
        {{ raw_value('a', api, 'type', 'text') }} as legacy_type,
        {{ utc_instant('a', api, 'start_date') }} as start_date,
        {{ raw_value('a', api, 'start_date_local', 'timestamp') }} as start_date_local,
        {{ raw_value('a', api, 'timezone', 'text') }} as strava_timezone,
        {{ raw_value('a', api, 'kilojoules', 'double precision') }} as kilojoules,
        {{ raw_value('a', api, 'gear_id', 'text') }} as gear_id,
        {{ raw_value('a', api, 'trainer', 'boolean') }} as trainer,
        {{ raw_value('a', api, 'manual', 'boolean') }} as manual,
        {{ raw_value('a', api, 'private', 'boolean') }} as is_private,
        {% if api is not none and '_sdc_deleted_at' in api -%}
        a._sdc_deleted_at is not null
        {%- else -%}
        false
        {%- endif %} as flagged_deleted
    from {{ raw_from('activities', api) }} as a
    {{ raw_where(api) }}
),

details as (
    {#- One row per activity (the stream is keyed by id). #}
    select
        {{ raw_value('d', details, 'id', 'bigint') }} as id,
        {{ raw_value('d', details, 'athlete_id', 'bigint') }} as athlete_id,
        max({{ raw_value('d', details, 'description', 'text') }}) as description,
        max({{ raw_value('d', details, 'calories', 'double precision') }}) as calories
    from {{ raw_from('activity_details', details) }} as d
    {{ raw_where(details) }}
    group by 1, 2
),

archive as (
    select
        {{ raw_value('e', archive, 'id', 'bigint') }} as id,
        {{ raw_value('e', archive, 'athlete_id', 'bigint') }} as athlete_id,
        {%- for name, kind in shared %}
        {{ raw_value('e', archive, name, kind) }} as {{ adapter.quote(name) }},
        {%- endfor %}
        {{ utc_instant('e', archive, 'start_date') }} as start_date,
        {{ raw_value('e', archive, 'start_date_local', 'timestamp') }} as start_date_local,
        {{ raw_value('e', archive, 'start_date_local_rule', 'text') }} as start_date_local_rule,
        {{ raw_value('e', archive, 'description', 'text') }} as description,
        {{ raw_value('e', archive, 'calories', 'double precision') }} as calories,
        {#- Total Work is in joules; the API's kilojoules. #}
        {{ raw_value('e', archive, 'total_work', 'double precision') }} / 1000.0 as kilojoules,
        {{ raw_value('e', archive, 'gear_name', 'text') }} as gear_name,
        {#- The Bike and Gear columns hold the gear's number as "12345678.0": the API's gear
            id is b12345678 (bike) or g12345678 (shoe). Anything else: no id. #}
        case
            when {{ raw_value('e', archive, 'bike', 'text') }} similar to '[0-9]+([.]0*)?'
                then 'b' || split_part({{ raw_value('e', archive, 'bike', 'text') }}, '.', 1)
            when {{ raw_value('e', archive, 'gear', 'text') }} similar to '[0-9]+([.]0*)?'
                then 'g' || split_part({{ raw_value('e', archive, 'gear', 'text') }}, '.', 1)
        end as gear_id,
        not {{ raw_value('e', archive, 'from_upload', 'boolean') }} as manual
    from {{ raw_from('export_activities', archive) }} as e
    {{ raw_where(archive) }}
),

deletions as (
    select distinct
        {{ raw_value('x', deletions, 'id', 'bigint') }} as id,
        {{ raw_value('x', deletions, 'athlete_id', 'bigint') }} as athlete_id
    from {{ raw_from('activity_deletions', deletions) }} as x
    {{ raw_where(deletions) }}
),

{%- set track_tables = [] %}
{%- for table, columns in [('activity_streams', streams), ('export_tracks', tracks)] %}
    {%- if columns is not none and 'activity_id' in columns and 'athlete_id' in columns %}
        {%- do track_tables.append(table) %}
    {%- endif %}
{%- endfor %}

tracks as (
    {%- for table in track_tables %}
    select distinct cast(activity_id as bigint) as id, cast(athlete_id as bigint) as athlete_id
    from {{ source('strava', table) }}
    {% if not loop.last %}union{% endif %}
    {%- else %}
    select cast(null as bigint) as id, cast(null as bigint) as athlete_id where 1 = 0
    {%- endfor %}
),

zone_candidates as (
    {#- The athlete's time zone: the profile's, else that of their newest API activity. #}
    {%- set profile_zone = athlete is not none and 'timezone' in athlete %}
    {%- if profile_zone %}
    select
        cast({{ 'athlete_id' if 'athlete_id' in athlete else 'id' }} as bigint) as athlete_id,
        cast(timezone as text) as strava_timezone,
        1 as preference,
        cast(null as timestamptz) as seen_at
    from {{ source('strava', 'athlete') }}
    union all
    {%- endif %}
    select athlete_id, strava_timezone, 2 as preference, start_date as seen_at
    from api
    where strava_timezone is not null
),

zones as (
    select athlete_id, iana_name as time_zone
    from (
        select
            candidates.athlete_id,
            candidates.iana_name,
            row_number() over (
                partition by candidates.athlete_id
                order by candidates.preference, candidates.seen_at desc
            ) as pick
        from (
            select
                athlete_id,
                preference,
                seen_at,
                case
                    when strava_timezone like '(%) %' then split_part(strava_timezone, ') ', 2)
                    else strava_timezone
                end as iana_name
            from zone_candidates
        ) as candidates
        {#- A name the database does not know would fail the whole query: skipped. #}
        inner join ({{ time_zone_names() }}) as known on known.name = candidates.iana_name
    ) as ranked
    where pick = 1
),

keys as (
    select id, athlete_id from api
    union
    select id, athlete_id from archive
),

merged as (
    select
        keys.id,
        keys.athlete_id,
        case
            when a.id is not null and e.id is not null then 'both'
            when a.id is not null then 'api'
            else 'archive'
        end as source,
        {%- for name, kind in shared %}
        coalesce(a.{{ adapter.quote(name) }}, e.{{ adapter.quote(name) }}) as {{ adapter.quote(name) }},
        {%- endfor %}
        coalesce(a.legacy_type, a.sport_type, e.sport_type) as legacy_type,
        coalesce(d.description, e.description) as description,
        coalesce(d.calories, e.calories) as calories,
        coalesce(a.kilojoules, e.kilojoules) as kilojoules,
        coalesce(a.start_date, e.start_date) as start_date,
        a.start_date_local as api_start_date_local,
        e.start_date_local as archive_start_date_local,
        e.start_date_local_rule as archive_local_rule,
        zones.time_zone,
        coalesce(a.gear_id, e.gear_id) as gear_id,
        e.gear_name as archive_gear_name,
        a.trainer,
        coalesce(a.manual, e.manual) as manual,
        a.is_private,
        tracks.id is not null as has_track
    from keys
    left join api as a on a.id = keys.id and a.athlete_id = keys.athlete_id
    left join details as d on d.id = keys.id and d.athlete_id = keys.athlete_id
    left join archive as e on e.id = keys.id and e.athlete_id = keys.athlete_id
    left join deletions as x on x.id = keys.id and x.athlete_id = keys.athlete_id
    left join tracks on tracks.id = keys.id and tracks.athlete_id = keys.athlete_id
    left join zones on zones.athlete_id = keys.athlete_id
    where x.id is null
        and not coalesce(a.flagged_deleted, false)
)

select
    id,
    athlete_id,
    source,
    name,
    description,
    coalesce(sport_type, legacy_type, 'Unknown') as sport_type,
    coalesce(legacy_type, sport_type, 'Unknown') as type,
    start_date,
    case
        when api_start_date_local is not null then api_start_date_local
        when archive_start_date_local is not null then archive_start_date_local
        when time_zone is not null then timezone(time_zone, start_date)
        else timezone('UTC', start_date)
    end as start_date_local,
    case
        when api_start_date_local is not null then 'api'
        when archive_start_date_local is not null
            then coalesce(archive_local_rule, 'archive_local_time')
        when time_zone is not null then 'athlete_timezone'
        else 'utc'
    end as local_time_rule,
    time_zone as athlete_time_zone,
    distance,
    moving_time,
    elapsed_time,
    total_elevation_gain,
    elev_high,
    elev_low,
    average_speed,
    max_speed,
    average_heartrate,
    max_heartrate,
    average_watts,
    max_watts,
    weighted_average_watts,
    kilojoules,
    average_cadence,
    suffer_score,
    calories,
    gear_id,
    archive_gear_name as gear_name,
    coalesce(trainer, false) as trainer,
    coalesce(commute, false) as commute,
    coalesce(manual, false) as manual,
    coalesce(is_private, false) as {{ adapter.quote('private') }},
    has_track
from merged
