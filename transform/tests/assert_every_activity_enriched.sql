-- No activity is lost or duplicated between the merged model and the marts, athlete by
-- athlete, and the weekly, monthly and yearly volumes add up to the same distance.
with merged as (
    select athlete_id, count(*) as activities, sum(coalesce(distance, 0)) / 1000.0 as km
    from {{ ref('activities_all') }}
    group by athlete_id
),

checks as (
    select 'activities_enriched' as model, athlete_id, count(*) as activities,
        sum(distance_km) as km
    from {{ ref('activities_enriched') }}
    group by athlete_id
    union all
    select 'weekly_volume', athlete_id, sum(activities), sum(distance_km)
    from {{ ref('weekly_volume') }}
    group by athlete_id
    union all
    select 'monthly_volume', athlete_id, sum(activities), sum(distance_km)
    from {{ ref('monthly_volume') }}
    group by athlete_id
    union all
    select 'yearly_totals', athlete_id, sum(activities), sum(distance_km)
    from {{ ref('yearly_totals') }}
    where sport_type <> 'All'
    group by athlete_id
)

select checks.*, merged.activities as merged_activities
from checks
full outer join merged on merged.athlete_id = checks.athlete_id
where merged.athlete_id is null
    or checks.athlete_id is null
    or checks.activities <> merged.activities
    or abs(checks.km - merged.km) > 0.001
