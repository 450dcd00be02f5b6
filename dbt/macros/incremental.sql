{#- Incremental models by dt, one model for both engines.

    The strategy comes from the target: Athena (Hive tables) overwrites the dt partitions the
    new rows fall in (insert_overwrite); DuckDB deletes the rows of those dates and inserts the
    new ones (delete+insert on dt). Either way an incremental run replaces whole days: the
    latest day built and the `lookback_days` before it, so that late events land. -#}

{% macro incremental_strategy() -%}
  {{ return(adapter.dispatch('incremental_strategy', 'musicsync')()) }}
{%- endmacro %}

{% macro default__incremental_strategy() -%}
  {{ return('delete+insert') }}
{%- endmacro %}

{% macro athena__incremental_strategy() -%}
  {{ return('insert_overwrite') }}
{%- endmacro %}


{#- The config of a model incremental by dt (dt must be its last column, for Athena's CTAS).
    unique_key is a string, not a list: dbt then deletes `where dt in (select dt ...)`; given a
    list it joins the new rows to the old on dt, each new row of a day to every old one. -#}
{% macro daily_incremental_config() -%}
  {{ return({
      'materialized': 'incremental',
      'incremental_strategy': musicsync.incremental_strategy(),
      'unique_key': 'dt',
      'partitioned_by': ['dt'],
      'on_schema_change': 'fail',
  }) }}
{%- endmacro %}


{#- The first dt an incremental run recomputes, as a SQL date literal (so that the engines prune
    partitions when planning): `lookback_days` before the latest dt already built (`extra_days`
    more for models that read further back, e.g. MAU). None on a first or full-refresh build,
    or while parsing. -#}
{% macro incremental_cutoff(extra_days=0) -%}
  {%- if not (execute and musicsync.incremental_run()) -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set lookback = var('lookback_days') | int -%}
  {%- if lookback < 0 or lookback > 98 -%}
    {%- do exceptions.raise_compiler_error(
      'lookback_days must be 0 to 98: each run rewrites lookback_days + 1 partitions'
      ~ ' (Athena writes at most 100 a query)'
    ) -%}
  {%- endif -%}
  {%- if var('compile_offline', none) is not none -%}
    {%- set latest = var('offline_latest_dt') -%}
    {%- set day = modules.datetime.date.fromisoformat(latest) -%}
    {%- set cutoff = day - modules.datetime.timedelta(days=lookback + extra_days) -%}
    {{ return("date '" ~ cutoff.isoformat() ~ "'") }}
  {%- endif -%}
  {%- if model.resource_type == 'unit_test' -%}
    {#- A unit test's `this` is a fixture inside the query: compute the same date in SQL. -#}
    {%- set latest = '(select max(dt) from ' ~ this ~ ')' -%}
    {%- set expression = musicsync.add_days(latest, -(lookback + extra_days)) -%}
    {{ return(expression | string | trim) }}
  {%- endif -%}
  {%- set result = run_query('select cast(max(dt) as varchar) from ' ~ this) -%}
  {%- set latest = result.columns[0].values()[0] -%}
  {%- if latest is none -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set day = modules.datetime.date.fromisoformat(latest[:10]) -%}
  {%- set cutoff = day - modules.datetime.timedelta(days=lookback + extra_days) -%}
  {{ return("date '" ~ cutoff.isoformat() ~ "'") }}
{%- endmacro %}


{#- Whether this run builds the current model incrementally: dbt's is_incremental(), except
    when compiling offline (var compile_offline: 'full' or 'incremental', for checking the
    Athena SQL without AWS), when the answer is given and the warehouse is never asked. -#}
{% macro incremental_run() -%}
  {%- set offline = var('compile_offline', none) -%}
  {%- if offline is not none -%}
    {{ return(offline == 'incremental') }}
  {%- endif -%}
  {{ return(is_incremental()) }}
{%- endmacro %}


{#- `and <column> >= <cutoff>` in an incremental run, nothing otherwise. -#}
{% macro and_since_cutoff(column='dt', extra_days=0) -%}
  {%- set cutoff = musicsync.incremental_cutoff(extra_days) -%}
  {%- if cutoff %} and {{ column }} >= {{ cutoff }}{% endif -%}
{%- endmacro %}
