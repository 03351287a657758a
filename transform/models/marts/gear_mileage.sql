-- Distance per athlete, bike and pair of shoes: counted from the loaded activities (API
-- and archive), next to the total Strava keeps (which also includes activities older than
-- the loaded history). Gear that activities name but the profile does not list (sold,
-- deleted, or an archive-only athlete without a profile) still shows, named as the archive
-- names it where it does.
with used as (
    select
        athlete_id,
        gear_id,
        max(gear_name) as archive_gear_name,
        count(*) as activities,
        sum(distance_km) as distance_km,
        sum(distance_mi) as distance_mi,
        sum(moving_hours) as moving_hours,
        min(local_date) as first_used,
        max(local_date) as last_used
    from {{ ref('activities_enriched') }}
    where gear_id is not null
    group by athlete_id, gear_id
),

gear as (
    select * from {{ ref('stg_gear') }}
)

select
    coalesce(gear.athlete_id, used.athlete_id) as athlete_id,
    coalesce(gear.gear_id, used.gear_id) as gear_id,
    coalesce(gear.gear_kind, case when used.gear_id like 'b%' then 'bike' else 'shoe' end)
        as gear_kind,
    coalesce(gear.gear_name, used.archive_gear_name, used.gear_id) as gear_name,
    coalesce(gear.is_primary, false) as is_primary,
    coalesce(gear.is_retired, gear.gear_id is null and used.archive_gear_name is null)
        as is_retired,
    coalesce(used.activities, 0) as activities,
    coalesce(used.distance_km, 0) as distance_km,
    coalesce(used.distance_mi, 0) as distance_mi,
    coalesce(used.moving_hours, 0) as moving_hours,
    used.first_used,
    used.last_used,
    gear.strava_distance_m / 1000.0 as strava_distance_km
from gear
full outer join used on gear.athlete_id = used.athlete_id and gear.gear_id = used.gear_id
