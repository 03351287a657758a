-- The athletes' bikes and shoes, with the total distance Strava keeps for each (from the
-- API's athlete profile; an archive-only athlete has no athlete table: no rows).
{%- set athlete = raw_columns('athlete') %}
{%- set kinds = [('bike', 'bikes'), ('shoe', 'shoes')] %}
{%- set present = [] %}
{%- for kind, column in kinds if athlete is not none and column in athlete %}
    {%- do present.append((kind, column)) %}
{%- endfor %}
{%- for kind, column in present %}
select
    '{{ kind }}' as gear_kind,
    cast(items.athlete_id as bigint) as athlete_id,
    items.gear_id,
    items.gear_name,
    items.strava_distance_m,
    items.is_primary,
    items.is_retired
from ({{ gear_items(column) }}) as items
{% if not loop.last %}union all{% endif %}
{%- else %}
select
    cast(null as text) as gear_kind,
    cast(null as bigint) as athlete_id,
    cast(null as text) as gear_id,
    cast(null as text) as gear_name,
    cast(null as double precision) as strava_distance_m,
    cast(null as boolean) as is_primary,
    cast(null as boolean) as is_retired
where 1 = 0
{%- endfor %}
