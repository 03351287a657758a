-- Every activity in the units people read: km and miles, pace per km and per mile, km/h,
-- and the local date, ISO week and month it belongs to (from start_date_local, so a
-- Sunday-evening run in Auckland counts in the athlete's Sunday, not UTC's Monday).
with activities as (
    select * from {{ ref('stg_activities') }}
)

select
    activity_id,
    athlete_id,
    activity_name,
    sport_type,
    {{ sport_group('sport_type') }} as sport_group,
    start_date_utc,
    start_date_local,
    cast(start_date_local as date) as local_date,
    cast(date_trunc('week', start_date_local) as date) as week_start,
    cast(date_trunc('month', start_date_local) as date) as month_start,
    cast(extract(isoyear from start_date_local) as integer) as iso_year,
    cast(extract(week from start_date_local) as integer) as iso_week,
    cast(extract(year from start_date_local) as integer) as local_year,
    distance_m,
    distance_m / 1000.0 as distance_km,
    distance_m / 1609.344 as distance_mi,
    moving_time_s,
    elapsed_time_s,
    cast(moving_time_s as double precision) / 3600.0 as moving_hours,
    elevation_gain_m,
    case when moving_time_s > 0 then distance_m * 3.6 / moving_time_s end as average_speed_kmh,
    max_speed_mps * 3.6 as max_speed_kmh,
    -- Pace only where there is a distance: a weight-training session has none.
    case when distance_m > 0 then moving_time_s / 60.0 / (distance_m / 1000.0) end
        as pace_min_per_km,
    case when distance_m > 0 then moving_time_s / 60.0 / (distance_m / 1609.344) end
        as pace_min_per_mile,
    gear_id,
    trainer,
    commute,
    manual,
    is_private,
    sport_type in {{ ride_sport_types() }} as is_ride,
    case
        when sport_type not in {{ ride_sport_types() }} then null
        when trainer or sport_type = 'VirtualRide' or legacy_type = 'VirtualRide' then 'indoor'
        else 'outdoor'
    end as ride_bucket
from activities
