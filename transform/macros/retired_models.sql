{#-
  Models an earlier version built and this one does not: dropped before a run, so that an
  upgrade leaves nothing stale behind. `stg_activities` was a view on the raw `activities`
  table (PostgreSQL): left there, it would pin that table's column types, and
  target-postgres cannot alter a column a view depends on.
-#}
{% macro drop_retired_models() %}
    {% if execute %}
        {% for name in ['stg_activities'] %}
            {% set relation = adapter.get_relation(
                database=target.database, schema=target.schema, identifier=name
            ) %}
            {% if relation is not none %}
                {% do log('dropping the retired model ' ~ relation, info=true) %}
                {% do adapter.drop_relation(relation) %}
            {% endif %}
        {% endfor %}
    {% endif %}
{% endmacro %}
