-- Training volume per athlete, calendar month (local time) and sport type.
select
    athlete_id,
    month_start,
    cast(extract(year from month_start) as integer) as year,
    cast(extract(month from month_start) as integer) as month,
    sport_type,
    count(*) as activities,
    sum(distance_km) as distance_km,
    sum(distance_mi) as distance_mi,
    sum(moving_hours) as moving_hours,
    sum(elevation_gain_m) as elevation_gain_m
from {{ ref('activities_enriched') }}
group by athlete_id, month_start, sport_type
