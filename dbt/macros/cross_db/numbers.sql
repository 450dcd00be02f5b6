{#- `numerator / denominator` as a double, null when the denominator is 0 or null (Trino divides
    integers to an integer; DuckDB to a double). -#}
{% macro ratio(numerator, denominator) -%}
  (cast({{ numerator }} as double) / nullif(cast({{ denominator }} as double), 0))
{%- endmacro %}
