{{ config(**daily_incremental_config()) }}

{#- Search query x day: how often each query was searched and how often it found nothing.
    Queries are compared lower-cased with their white space collapsed; a search with no text
    (filters only) has the query ''. -#}

with searches as (

    select
        dt,
        actor_id,
        result_count,
        latency_ms,
        {%- set query_text = "coalesce(" ~ json_text('properties', 'query') ~ ", '')" %}
        lower(trim({{ replace_all(query_text, '\\s+', ' ') }})) as query
    from {{ ref('stg_lake__events') }}
    where event_type = 'search_performed'
        {{ and_since_cutoff('dt') }}

)

select
    query,
    count(*) as searches,
    sum(case when result_count = 0 then 1 else 0 end) as zero_result_searches,
    {{ ratio('sum(case when result_count = 0 then 1 else 0 end)', 'count(*)') }}
        as zero_result_rate,
    count(distinct actor_id) as searchers,
    avg(cast(result_count as double)) as avg_result_count,
    avg(cast(latency_ms as double)) as avg_latency_ms,
    row_number() over (partition by dt order by count(*) desc, query) as daily_rank,
    dt
from searches
group by dt, query
