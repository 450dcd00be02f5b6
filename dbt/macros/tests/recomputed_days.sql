{#- Data tests on big event relations read, in an incremental run, only the days that run
    recomputed: a test configured `where: __recomputed_days__` gets the predicate
    `dt >= <date>` (the latest day built before, less lookback_days + 1), or `true` on a full
    refresh or the first build, when everything is new. The latest day built is read from
    int_user_activity_aggregated_to_days (cheap: a table, one row per user and day). -#}

{% macro get_where_subquery(relation) -%}
  {%- set where = config.get('where') -%}
  {%- if where and '__recomputed_days__' in where -%}
    {%- set where = where | replace('__recomputed_days__', musicsync.recomputed_days()) -%}
  {%- endif -%}
  {%- if where -%}
    {%- set filtered -%}
      (select * from {{ relation }} where {{ where }}) dbt_subquery
    {%- endset -%}
    {%- do return(filtered) -%}
  {%- else -%}
    {%- do return(relation) -%}
  {%- endif -%}
{%- endmacro %}


{% macro recomputed_days() -%}
  {%- set offline = var('compile_offline', none) -%}
  {%- if not execute or flags.FULL_REFRESH or offline == 'full' -%}
    {{ return('true') }}
  {%- endif -%}
  {%- if offline is not none -%}
    {%- set latest = modules.datetime.date.fromisoformat(var('offline_latest_dt')) -%}
    {%- set since = latest - modules.datetime.timedelta(days=(var('lookback_days') | int) + 1) -%}
    {{ return("dt >= date '" ~ since.isoformat() ~ "'") }}
  {%- endif -%}
  {%- set watermark = adapter.get_relation(
      database=target.database,
      schema=target.schema,
      identifier='int_user_activity_aggregated_to_days'
  ) -%}
  {%- if watermark is none -%}
    {{ return('true') }}
  {%- endif -%}
  {%- set result = run_query('select cast(max(dt) as varchar) from ' ~ watermark) -%}
  {%- set latest = result.columns[0].values()[0] -%}
  {%- if latest is none -%}
    {{ return('true') }}
  {%- endif -%}
  {%- set day = modules.datetime.date.fromisoformat(latest[:10]) -%}
  {%- set since = day - modules.datetime.timedelta(days=(var('lookback_days') | int) + 1) -%}
  {{ return("dt >= date '" ~ since.isoformat() ~ "'") }}
{%- endmacro %}
