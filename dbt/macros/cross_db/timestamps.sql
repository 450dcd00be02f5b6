{#- Dates and times. Every timestamp in the models is a plain (zoneless) timestamp holding UTC:
    Athena's Glue tables are zoneless already; DuckDB reads the lake's Parquet timestamps as
    TIMESTAMP WITH TIME ZONE, turned here into the UTC wall time. -#}

{% macro utc_timestamp(column) -%}
  {{ return(adapter.dispatch('utc_timestamp', 'musicsync')(column)) }}
{%- endmacro %}

{% macro default__utc_timestamp(column) -%}
  cast({{ column }} as timestamp)
{%- endmacro %}

{% macro duckdb__utc_timestamp(column) -%}
  cast(({{ column }}) at time zone 'UTC' as timestamp)
{%- endmacro %}


{#- The date `days` days after `date_expr` (negative: before). -#}
{% macro add_days(date_expr, days) -%}
  {{ return(adapter.dispatch('add_days', 'musicsync')(date_expr, days)) }}
{%- endmacro %}

{% macro default__add_days(date_expr, days) -%}
  date_add('day', {{ days }}, {{ date_expr }})
{%- endmacro %}

{% macro duckdb__add_days(date_expr, days) -%}
  (cast({{ date_expr }} as date) + cast({{ days }} as integer))
{%- endmacro %}


{#- Whole days from date `start` to date `end` (negative when end is earlier). -#}
{% macro days_between(start, end) -%}
  {{ return(adapter.dispatch('days_between', 'musicsync')(start, end)) }}
{%- endmacro %}

{% macro default__days_between(start, end) -%}
  date_diff('day', {{ start }}, {{ end }})
{%- endmacro %}

{% macro duckdb__days_between(start, end) -%}
  (cast({{ end }} as date) - cast({{ start }} as date))
{%- endmacro %}


{#- Seconds (a double, to the engine's precision) from timestamp `start` to timestamp `end`.
    Not date_diff('second', ...): DuckDB counts the second boundaries crossed, Trino whole
    elapsed seconds. -#}
{% macro seconds_between(start, end) -%}
  {{ return(adapter.dispatch('seconds_between', 'musicsync')(start, end)) }}
{%- endmacro %}

{% macro default__seconds_between(start, end) -%}
  (date_diff('millisecond', {{ start }}, {{ end }}) / 1e3)
{%- endmacro %}

{% macro duckdb__seconds_between(start, end) -%}
  ((epoch_us({{ end }}) - epoch_us({{ start }})) / 1e6)
{%- endmacro %}


{#- The Monday that starts the ISO week of a date. -#}
{% macro week_start(date_expr) -%}
  {{ return(adapter.dispatch('week_start', 'musicsync')(date_expr)) }}
{%- endmacro %}

{% macro default__week_start(date_expr) -%}
  date_trunc('week', {{ date_expr }})
{%- endmacro %}

{% macro duckdb__week_start(date_expr) -%}
  cast(date_trunc('week', cast({{ date_expr }} as date)) as date)
{%- endmacro %}


{#- A one-column query (`date_day`) of every date from `start` to `end`, both included; the
    bounds may be scalar subqueries. -#}
{% macro date_spine(start, end) -%}
  {{ return(adapter.dispatch('date_spine', 'musicsync')(start, end)) }}
{%- endmacro %}

{% macro default__date_spine(start, end) -%}
  select date_day
  from unnest(sequence(cast(({{ start }}) as date), cast(({{ end }}) as date), interval '1' day))
    as spine (date_day)
{%- endmacro %}

{% macro duckdb__date_spine(start, end) -%}
  select cast(unnest(generate_series(
    cast(({{ start }}) as timestamp), cast(({{ end }}) as timestamp), interval 1 day
  )) as date) as date_day
{%- endmacro %}
