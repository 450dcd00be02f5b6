{#- Listening cannot exceed what the plays could cover: within one play the position moves
    forward while listening, so a play listens at most the track's duration, plus what seeks
    moved back (rewound_ms), plus the players' rounding at the end (var end_slack_ms).
    A row here means listening counted twice (a duplicate that staging let through) or a play
    whose start never reached the lake. Rows with activity in the last lookback_days are not
    judged yet: a play's reports travel in separate batches, and the one with its start may
    still be on its way (late events land within the look-back window). -#}

with engagement as (

    select * from {{ ref('fct_pitch_engagement') }}

),

settled as (

    select {{ add_days('max(cast(last_activity_at as date))', -(var('lookback_days') | int)) }}
        as before_dt
    from engagement

)

select
    engagement.pitch_id,
    engagement.recipient_id,
    engagement.track_id,
    engagement.plays,
    engagement.duration_ms,
    engagement.rewound_ms,
    engagement.listened_ms
from engagement
cross join settled
where engagement.duration_ms is not null
    and cast(engagement.last_activity_at as date) < settled.before_dt
    and engagement.listened_ms
        > engagement.plays * (engagement.duration_ms + {{ var('end_slack_ms') }})
        + engagement.rewound_ms
