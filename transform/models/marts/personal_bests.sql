-- Each athlete's fastest activity over each standard distance. The activity list gives each
-- activity's average moving pace only (split times are in best_efforts of the detailed
-- activity), so the time is estimated: the distance at that activity's average pace,
-- from activities at least that long.
{% set targets = [
    ('run', '1K', 1000), ('run', '5K', 5000), ('run', '10K', 10000),
    ('run', 'Half marathon', 21097.5), ('run', 'Marathon', 42195),
    ('ride', '20K', 20000), ('ride', '40K', 40000), ('ride', '100K', 100000),
    ('ride', '100 miles', 160934.4),
    ('swim', '400m', 400), ('swim', '1500m', 1500),
] %}

with targets as (
    {% for group, label, metres in targets %}
    select '{{ group }}' as sport_group, '{{ label }}' as distance_label,
        cast({{ metres }} as double precision) as target_m
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

candidates as (
    select
        a.athlete_id,
        targets.sport_group,
        targets.distance_label,
        targets.target_m,
        a.activity_id,
        a.activity_name,
        a.sport_type,
        a.local_date,
        a.distance_km,
        a.pace_min_per_km,
        a.average_speed_kmh,
        targets.target_m * a.moving_time_s / a.distance_m as estimated_time_s,
        row_number() over (
            partition by a.athlete_id, targets.sport_group, targets.distance_label
            order by a.moving_time_s / a.distance_m, a.local_date, a.activity_id
        ) as fastest
    from targets
    inner join {{ ref('activities_enriched') }} as a
        on a.sport_group = targets.sport_group
        and a.distance_m >= targets.target_m
        and a.moving_time_s > 0
        and not a.trainer
)

select
    athlete_id,
    sport_group,
    distance_label,
    target_m / 1000.0 as target_km,
    activity_id,
    activity_name,
    sport_type,
    local_date,
    distance_km,
    estimated_time_s,
    pace_min_per_km,
    average_speed_kmh
from candidates
where fastest = 1
