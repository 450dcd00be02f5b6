{#- Cohort week x weeks since: of the users first active in a week (Monday to Sunday, UTC), how
    many were active again n weeks later. Every cohort has a row for each week from its own up
    to the latest week with activity (0 active users included). -#}

with active_weeks as (

    select distinct
        user_id,
        {{ week_start('dt') }} as activity_week
    from {{ ref('int_user_activity_aggregated_to_days') }}

),

cohorts as (

    select user_id, min(activity_week) as cohort_week
    from active_weeks
    group by user_id

),

cohort_sizes as (

    select cohort_week, count(*) as cohort_users
    from cohorts
    group by cohort_week

),

weeks as (

    select date_day as week
    from (
        {{ date_spine(
            '(select min(activity_week) from active_weeks)',
            '(select max(activity_week) from active_weeks)'
        ) }}
    ) as days
    where {{ week_start('date_day') }} = date_day

),

returning_users as (

    select
        cohorts.cohort_week,
        active_weeks.activity_week,
        count(*) as active_users
    from active_weeks
    inner join cohorts on cohorts.user_id = active_weeks.user_id
    group by cohorts.cohort_week, active_weeks.activity_week

)

select
    cohort_sizes.cohort_week,
    cast({{ days_between('cohort_sizes.cohort_week', 'weeks.week') }} / 7 as bigint)
        as weeks_since_first,
    weeks.week as activity_week,
    cohort_sizes.cohort_users,
    coalesce(returning_users.active_users, 0) as active_users,
    {{ ratio('coalesce(returning_users.active_users, 0)', 'cohort_sizes.cohort_users') }}
        as retention_rate
from cohort_sizes
inner join weeks on weeks.week >= cohort_sizes.cohort_week
left join returning_users
    on returning_users.cohort_week = cohort_sizes.cohort_week
    and returning_users.activity_week = weeks.week
