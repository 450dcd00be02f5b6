{{ config(**daily_incremental_config()) }}

{#- One row per user and day on which the user did anything (any event a user acted in). -#}

select
    actor_id as user_id,
    count(*) as events,
    count(distinct session_id) as sessions,
    min(occurred_at) as first_event_at,
    max(occurred_at) as last_event_at,
    dt
from {{ ref('stg_lake__events') }}
where event_type in ({{ quoted_list(user_event_types()) }})
    and actor_type = 'user'
    and actor_id is not null
    {{ and_since_cutoff('dt') }}
group by dt, actor_id
