-- Totals per athlete and local calendar year, per sport type and for all sports ('All'), next to the
-- year before and the change in distance.
with per_sport as (
    select
        athlete_id,
        local_year as year,
        sport_type,
        count(*) as activities,
        sum(distance_km) as distance_km,
        sum(moving_hours) as moving_hours,
        sum(elevation_gain_m) as elevation_gain_m
    from {{ ref('activities_enriched') }}
    group by athlete_id, local_year, sport_type
),

all_sports as (
    select
        athlete_id,
        year,
        'All' as sport_type,
        sum(activities) as activities,
        sum(distance_km) as distance_km,
        sum(moving_hours) as moving_hours,
        sum(elevation_gain_m) as elevation_gain_m
    from per_sport
    group by athlete_id, year
),

totals as (
    select * from per_sport
    union all
    select * from all_sports
)

select
    totals.athlete_id,
    totals.year,
    totals.sport_type,
    cast(totals.activities as bigint) as activities,
    totals.distance_km,
    totals.moving_hours,
    totals.elevation_gain_m,
    previous.distance_km as previous_year_distance_km,
    totals.distance_km - coalesce(previous.distance_km, 0) as distance_km_change,
    case
        when previous.distance_km > 0
            then 100.0 * (totals.distance_km - previous.distance_km) / previous.distance_km
    end as distance_change_pct
from totals
left join totals as previous
    on previous.athlete_id = totals.athlete_id
    and previous.sport_type = totals.sport_type
    and previous.year = totals.year - 1
