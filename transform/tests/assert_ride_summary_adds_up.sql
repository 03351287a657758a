-- Every grain of ride_summary accounts for every ride of each athlete exactly once, and
-- its outdoor and indoor buckets add up to the total.
with rides as (
    select athlete_id, count(*) as rides, sum(distance_km) as km
    from {{ ref('activities_enriched') }}
    where is_ride
    group by athlete_id
),

grains as (
    select
        athlete_id,
        period_grain,
        sum(total_rides) as rides,
        sum(total_km) as km,
        sum(outdoor_rides + indoor_rides) as bucket_rides,
        sum(outdoor_km + indoor_km) as bucket_km
    from {{ ref('ride_summary') }}
    group by athlete_id, period_grain
)

select grains.*
from grains
left join rides on rides.athlete_id = grains.athlete_id
where rides.athlete_id is null
    or grains.rides <> rides.rides
    or grains.bucket_rides <> rides.rides
    or abs(grains.km - rides.km) > 0.001
    or abs(grains.bucket_km - rides.km) > 0.001
