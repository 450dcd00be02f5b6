{#- JSON, text and arrays. -#}

{#- The value at `key` of the JSON object in text column `column`, as text (null when absent or
    not a scalar). -#}
{% macro json_text(column, key) -%}
  {{ return(adapter.dispatch('json_text', 'musicsync')(column, key)) }}
{%- endmacro %}

{% macro default__json_text(column, key) -%}
  json_extract_scalar({{ column }}, '$.{{ key }}')
{%- endmacro %}

{% macro duckdb__json_text(column, key) -%}
  (case when json_type({{ column }}, '$.{{ key }}') not in ('OBJECT', 'ARRAY')
        then json_extract_string({{ column }}, '$.{{ key }}') end)
{%- endmacro %}


{#- Every match of the regular expression `pattern` in `expr` replaced by `replacement`
    (DuckDB's regexp_replace replaces the first match unless told 'g'). -#}
{% macro replace_all(expr, pattern, replacement) -%}
  {{ return(adapter.dispatch('replace_all', 'musicsync')(expr, pattern, replacement)) }}
{%- endmacro %}

{% macro default__replace_all(expr, pattern, replacement) -%}
  regexp_replace({{ expr }}, '{{ pattern }}', '{{ replacement }}')
{%- endmacro %}

{% macro duckdb__replace_all(expr, pattern, replacement) -%}
  regexp_replace({{ expr }}, '{{ pattern }}', '{{ replacement }}', 'g')
{%- endmacro %}


{#- The elements of an array of text joined by `separator`. -#}
{% macro array_to_text(column, separator=', ') -%}
  {{ return(adapter.dispatch('array_to_text', 'musicsync')(column, separator)) }}
{%- endmacro %}

{% macro default__array_to_text(column, separator) -%}
  array_join({{ column }}, '{{ separator }}')
{%- endmacro %}

{% macro duckdb__array_to_text(column, separator) -%}
  array_to_string({{ column }}, '{{ separator }}')
{%- endmacro %}


{#- The number of elements of an array (0 for an empty one, null for null). -#}
{% macro array_size(column) -%}
  {{ return(adapter.dispatch('array_size', 'musicsync')(column)) }}
{%- endmacro %}

{% macro default__array_size(column) -%}
  cardinality({{ column }})
{%- endmacro %}

{% macro duckdb__array_size(column) -%}
  len({{ column }})
{%- endmacro %}
