-- The original script's SQL summary function, as a model, per athlete: rides split into outdoor and
-- indoor (trainer flag or VirtualRide), with totals per day, ISO week, month and year of
-- local time. The function's "any date range" is a sum over the day rows, e.g.
--   select sum(outdoor_km), sum(indoor_km) from analytics.ride_summary
--   where athlete_id = 12345 and period_grain = 'day' and period_start between '2026-03-01' and '2026-05-31'
with rides as (
    select * from {{ ref('activities_enriched') }}
    where is_ride
)

{% for grain in ['day', 'week', 'month', 'year'] %}
select
    athlete_id,
    '{{ grain }}' as period_grain,
    cast(date_trunc('{{ grain }}', start_date_local) as date) as period_start,
    count(case when ride_bucket = 'outdoor' then 1 end) as outdoor_rides,
    coalesce(sum(case when ride_bucket = 'outdoor' then distance_km end), 0) as outdoor_km,
    coalesce(sum(case when ride_bucket = 'outdoor' then moving_hours end), 0) as outdoor_hours,
    coalesce(sum(case when ride_bucket = 'outdoor' then elevation_gain_m end), 0)
        as outdoor_elevation_m,
    count(case when ride_bucket = 'indoor' then 1 end) as indoor_rides,
    coalesce(sum(case when ride_bucket = 'indoor' then distance_km end), 0) as indoor_km,
    coalesce(sum(case when ride_bucket = 'indoor' then moving_hours end), 0) as indoor_hours,
    count(*) as total_rides,
    sum(distance_km) as total_km,
    sum(moving_hours) as total_hours,
    case
        when sum(distance_km) > 0
            then coalesce(sum(case when ride_bucket = 'indoor' then distance_km end), 0)
                / sum(distance_km)
    end as indoor_share
from rides
group by athlete_id, cast(date_trunc('{{ grain }}', start_date_local) as date)
{% if not loop.last %}union all{% endif %}
{% endfor %}
