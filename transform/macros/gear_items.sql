{#-
  One row per item of a JSON array column of the athlete table (bikes, shoes): id, name,
  distance in metres, primary and retired flags. The loaders store the arrays differently
  (target-postgres: jsonb[], DuckDB: JSON, JSON[] or text), hence one macro per adapter.
-#}
{% macro gear_items(column) %}
    {{ return(adapter.dispatch('gear_items')(column)) }}
{% endmacro %}

{% macro default__gear_items(column) %}
    {#- to_jsonb() turns jsonb[] and jsonb alike into one jsonb array. -#}
    select
        athlete_id,
        item ->> 'id' as gear_id,
        item ->> 'name' as gear_name,
        cast(item ->> 'distance' as double precision) as strava_distance_m,
        cast(item ->> 'primary' as boolean) as is_primary,
        cast(item ->> 'retired' as boolean) as is_retired
    from {{ source('strava', 'athlete') }}
    cross join lateral jsonb_array_elements(to_jsonb({{ column }})) as items(item)
    where {{ column }} is not null
{% endmacro %}

{% macro duckdb__gear_items(column) %}
    {#- cast(... as json) accepts a JSON value, a list of JSON values and JSON text. -#}
    select
        athlete_id,
        json_extract_string(item, '$.id') as gear_id,
        json_extract_string(item, '$.name') as gear_name,
        cast(json_extract_string(item, '$.distance') as double) as strava_distance_m,
        cast(json_extract_string(item, '$.primary') as boolean) as is_primary,
        cast(json_extract_string(item, '$.retired') as boolean) as is_retired
    from (
        select athlete_id, unnest(from_json(cast({{ column }} as json), '["json"]')) as item
        from {{ source('strava', 'athlete') }}
        where {{ column }} is not null
    ) as items
{% endmacro %}
