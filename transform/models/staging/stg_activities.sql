-- One row per activity with the columns the marts use, typed alike on both databases
-- (the loaders store numbers as numeric or double, times as timestamp or text).
select
    cast(id as bigint) as activity_id,
    cast(athlete_id as bigint) as athlete_id,
    name as activity_name,
    coalesce(sport_type, type, 'Unknown') as sport_type,
    type as legacy_type,
    cast(start_date as timestamp) as start_date_utc,
    -- Strava's local wall time (sent with a false "Z"); dates and weeks come from it.
    cast(start_date_local as timestamp) as start_date_local,
    cast(coalesce(distance, 0) as double precision) as distance_m,
    cast(coalesce(moving_time, 0) as bigint) as moving_time_s,
    cast(coalesce(elapsed_time, 0) as bigint) as elapsed_time_s,
    cast(coalesce(total_elevation_gain, 0) as double precision) as elevation_gain_m,
    cast(average_speed as double precision) as average_speed_mps,
    cast(max_speed as double precision) as max_speed_mps,
    gear_id,
    coalesce(trainer, false) as trainer,
    coalesce(commute, false) as commute,
    coalesce(manual, false) as manual,
    coalesce("private", false) as is_private
from {{ source('strava', 'activities') }}
