-- No activity is lost or duplicated between the raw table and the marts, and the weekly
-- and yearly volumes add up to the same distance.
with source_rows as (
    select count(*) as activities, sum(cast(distance as double precision)) / 1000.0 as km
    from {{ source('strava', 'activities') }}
),

checks as (
    select 'activities_enriched' as model, count(*) as activities, sum(distance_km) as km
    from {{ ref('activities_enriched') }}
    union all
    select 'weekly_volume', sum(activities), sum(distance_km) from {{ ref('weekly_volume') }}
    union all
    select 'monthly_volume', sum(activities), sum(distance_km) from {{ ref('monthly_volume') }}
    union all
    select 'yearly_totals', sum(activities), sum(distance_km)
    from {{ ref('yearly_totals') }} where sport_type <> 'All'
)

select checks.*
from checks
cross join source_rows
where checks.activities <> source_rows.activities
    or abs(checks.km - coalesce(source_rows.km, 0)) > 0.001
