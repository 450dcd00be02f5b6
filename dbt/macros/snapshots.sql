{#- The latest snapshot of a lake table: the rows of its greatest dt. -#}
{% macro latest_snapshot(table_name) -%}
  (select * from {{ source('lake', table_name) }}
   where dt = (select max(dt) from {{ source('lake', table_name) }}))
{%- endmacro %}
