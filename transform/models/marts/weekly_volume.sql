-- Training volume per athlete, ISO week (Monday to Sunday, local time) and sport type.
select
    athlete_id,
    week_start,
    cast(extract(isoyear from week_start) as integer) as iso_year,
    cast(extract(week from week_start) as integer) as iso_week,
    sport_type,
    count(*) as activities,
    sum(distance_km) as distance_km,
    sum(distance_mi) as distance_mi,
    sum(moving_hours) as moving_hours,
    sum(elevation_gain_m) as elevation_gain_m
from {{ ref('activities_enriched') }}
group by athlete_id, week_start, sport_type
