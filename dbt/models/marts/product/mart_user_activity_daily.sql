{{ config(**daily_incremental_config()) }}

{#- Day: active users (DAU; WAU over the 7 days and MAU over the 28 days ending that day), new
    users, stickiness, events and sessions. A user is active on a day they act in any event.
    Every day from the first to the latest active day has a row.

    WAU and MAU without a distinct count over moving windows: each active day of a user makes
    the user count in the windows of the days from it up to (not including) the user's next
    active day or the window's length, whichever comes first. These spans of one user never
    overlap, so a day's WAU is the number of spans covering it: a running sum of +1 where a
    span starts and -1 where it ends. An incremental run needs the active days from 27 days
    before the recomputed ones. -#}

{%- set cutoff = incremental_cutoff() %}

with active_days as (

    select
        user_id,
        dt,
        events,
        sessions,
        lead(dt) over (partition by user_id order by dt) as next_active_dt
    from {{ ref('int_user_activity_aggregated_to_days') }}
    where true {{ and_since_cutoff('dt', extra_days=27) }}

),

span_edges as (

    select dt as edge_dt, 1 as dau_delta, 1 as wau_delta, 1 as mau_delta
    from active_days
    union all
    select {{ add_days('dt', 1) }}, -1, 0, 0
    from active_days
    union all
    select
        case
            when next_active_dt is not null and next_active_dt < {{ add_days('dt', 7) }}
                then next_active_dt
            else {{ add_days('dt', 7) }}
        end,
        0, -1, 0
    from active_days
    union all
    select
        case
            when next_active_dt is not null and next_active_dt < {{ add_days('dt', 28) }}
                then next_active_dt
            else {{ add_days('dt', 28) }}
        end,
        0, 0, -1
    from active_days

),

daily_edges as (

    select
        edge_dt,
        sum(dau_delta) as dau_delta,
        sum(wau_delta) as wau_delta,
        sum(mau_delta) as mau_delta
    from span_edges
    group by edge_dt

),

spine as (

    {{ date_spine('(select min(dt) from active_days)', '(select max(dt) from active_days)') }}

),

rolling as (

    select
        spine.date_day as dt,
        sum(coalesce(daily_edges.dau_delta, 0)) over (
            order by spine.date_day rows between unbounded preceding and current row
        ) as dau,
        sum(coalesce(daily_edges.wau_delta, 0)) over (
            order by spine.date_day rows between unbounded preceding and current row
        ) as wau,
        sum(coalesce(daily_edges.mau_delta, 0)) over (
            order by spine.date_day rows between unbounded preceding and current row
        ) as mau
    from spine
    left join daily_edges on daily_edges.edge_dt = spine.date_day

),

totals as (

    select dt, sum(events) as events, sum(sessions) as sessions
    from active_days
    group by dt

),

new_users as (

    select first_dt as dt, count(*) as new_users
    from (
        select user_id, min(dt) as first_dt
        from {{ ref('int_user_activity_aggregated_to_days') }}
        group by user_id
    ) as firsts
    group by first_dt

)

select
    cast(rolling.dau as bigint) as dau,
    cast(rolling.wau as bigint) as wau,
    cast(rolling.mau as bigint) as mau,
    coalesce(new_users.new_users, 0) as new_users,
    {{ ratio('rolling.dau', 'rolling.mau') }} as dau_over_mau,
    coalesce(totals.events, 0) as events,
    coalesce(totals.sessions, 0) as sessions,
    rolling.dt
from rolling
left join totals on totals.dt = rolling.dt
left join new_users on new_users.dt = rolling.dt
where true {{ and_since_cutoff('rolling.dt') }}
