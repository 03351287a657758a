{#-
  Raw tables that may not exist. An API-only athlete has no export_* tables, an
  archive-only athlete no activities or athlete table, and the per-activity and events
  streams exist only once their jobs have run: a model over all sources asks the database
  what is there (adapter.get_relation, adapter.get_columns_in_relation) and reads a typed
  NULL for what is not, so one SQL text serves every kind of user on both databases.
-#}

{#- The columns of raw table `table` (lower-case name -> data type), or none when the table
    does not exist (or while dbt only parses the project). -#}
{% macro raw_columns(table) %}
    {% if not execute %}
        {{ return(none) }}
    {% endif %}
    {% set declared = source('strava', table) %}
    {% set relation = adapter.get_relation(
        database=declared.database, schema=declared.schema, identifier=declared.identifier
    ) %}
    {% if relation is none %}
        {{ return(none) }}
    {% endif %}
    {% set columns = {} %}
    {% for column in adapter.get_columns_in_relation(relation) %}
        {% do columns.update({column.name | lower: column.data_type | lower}) %}
    {% endfor %}
    {{ return(columns) }}
{% endmacro %}

{#- `FROM` target for a raw table: the table, or one placeholder row filtered out by
    raw_where() when it does not exist (every raw_value() then reads a typed NULL). -#}
{% macro raw_from(table, columns) %}
    {%- if columns is none -%}
        (select 1 as placeholder)
    {%- else -%}
        {{ source('strava', table) }}
    {%- endif -%}
{% endmacro %}

{% macro raw_where(columns) %}
    {%- if columns is none %} where 1 = 0 {% endif -%}
{% endmacro %}

{#- alias.name cast to `kind`, or a NULL of that type when the table or column is missing. -#}
{% macro raw_value(alias, columns, name, kind) %}
    {%- if columns is not none and name in columns -%}
        cast({{ alias }}.{{ adapter.quote(name) }} as {{ kind }})
    {%- else -%}
        cast(null as {{ kind }})
    {%- endif -%}
{% endmacro %}

{#- An instant as timestamptz. The loaders write date-times as `timestamp` (PostgreSQL's
    without time zone, DuckDB's TIMESTAMP) holding UTC: timezone('UTC', ts) reads them as
    UTC on both databases, whatever the session's time zone (a plain cast would take the
    session's zone). A column that is already timestamptz is kept; text is read as UTC. -#}
{% macro utc_instant(alias, columns, name) %}
    {%- if columns is none or name not in columns -%}
        cast(null as timestamptz)
    {%- elif 'with time zone' in columns[name] or columns[name] == 'timestamptz' -%}
        cast({{ alias }}.{{ adapter.quote(name) }} as timestamptz)
    {%- else -%}
        timezone('UTC', cast({{ alias }}.{{ adapter.quote(name) }} as timestamp))
    {%- endif -%}
{% endmacro %}

{#- The IANA time zone names the database knows (a bad name would fail the whole query). -#}
{% macro time_zone_names() %}
    {{ return(adapter.dispatch('time_zone_names')()) }}
{% endmacro %}

{% macro default__time_zone_names() %}
    select name from pg_timezone_names
{% endmacro %}

{% macro duckdb__time_zone_names() %}
    select name from pg_timezone_names()
{% endmacro %}
