-- Every activity of every athlete, from every source (intermediate/activities_all), in the
-- units people read: km and miles, pace per km and per mile, km/h, and the local date, ISO
-- week and month it belongs to. Those come from the local wall time start_date_local (a
-- timestamp without zone), never from casting the instant start_date to a date, which
-- would depend on the session's time zone: a Sunday-evening run in Auckland counts in the
-- athlete's Sunday, not UTC's Monday.
with activities as (
    select * from {{ ref('activities_all') }}
)

select
    athlete_id,
    id as activity_id,
    source,
    name as activity_name,
    sport_type,
    {{ sport_group('sport_type') }} as sport_group,
    start_date,
    start_date_local,
    local_time_rule,
    cast(start_date_local as date) as local_date,
    cast(date_trunc('week', start_date_local) as date) as week_start,
    cast(date_trunc('month', start_date_local) as date) as month_start,
    cast(extract(isoyear from start_date_local) as integer) as iso_year,
    cast(extract(week from start_date_local) as integer) as iso_week,
    cast(extract(year from start_date_local) as integer) as local_year,
    coalesce(distance, 0) as distance_m,
    coalesce(distance, 0) / 1000.0 as distance_km,
    coalesce(distance, 0) / 1609.344 as distance_mi,
    coalesce(moving_time, 0) as moving_time_s,
    coalesce(elapsed_time, 0) as elapsed_time_s,
    cast(coalesce(moving_time, 0) as double precision) / 3600.0 as moving_hours,
    coalesce(total_elevation_gain, 0) as elevation_gain_m,
    case when moving_time > 0 then coalesce(distance, 0) * 3.6 / moving_time end
        as average_speed_kmh,
    max_speed * 3.6 as max_speed_kmh,
    -- Pace only where there is a distance: a weight-training session has none.
    case when distance > 0 then coalesce(moving_time, 0) / 60.0 / (distance / 1000.0) end
        as pace_min_per_km,
    case when distance > 0 then coalesce(moving_time, 0) / 60.0 / (distance / 1609.344) end
        as pace_min_per_mile,
    average_heartrate,
    max_heartrate,
    average_watts,
    gear_id,
    gear_name,
    trainer,
    commute,
    manual,
    {{ adapter.quote('private') }} as is_private,
    has_track,
    sport_type in {{ ride_sport_types() }} as is_ride,
    case
        when sport_type not in {{ ride_sport_types() }} then null
        when trainer or sport_type = 'VirtualRide' or type = 'VirtualRide' then 'indoor'
        else 'outdoor'
    end as ride_bucket
from activities
