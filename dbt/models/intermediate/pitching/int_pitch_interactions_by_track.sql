{#- What each recipient did with each track of a pitch, from the events: plays and listening
    (from the plays), downloads, the shortlist's final state (the latest shortlisted or
    unshortlisted event wins) and comments on the track. One row per pitch, recipient and track
    with at least one such event. -#}

with plays as (

    select
        pitch_id,
        recipient_id,
        track_id,
        sum(case when play_number > 0 then 1 else 0 end) as plays,
        sum(listened_ms) as listened_ms,
        max(furthest_position_ms) as furthest_position_ms,
        sum(rewound_ms) as rewound_ms,
        sum(case when completed then 1 else 0 end) as completed_plays,
        sum(case when skipped then 1 else 0 end) as skipped_plays,
        min(started_at) as first_played_at,
        max(last_event_at) as last_event_at
    from {{ ref('int_pitch_playback_aggregated_to_plays') }}
    group by pitch_id, recipient_id, track_id

),

track_events as (

    select
        pitch_id,
        recipient_id,
        track_id,
        event_id,
        event_type,
        occurred_at,
        received_at
    from {{ ref('stg_lake__events') }}
    where event_type in (
            'pitch_track_downloaded',
            'pitch_track_shortlisted',
            'pitch_track_unshortlisted',
            'pitch_comment_added'
        )
        and pitch_id is not null
        and recipient_id is not null
        and track_id is not null

),

feedback as (

    select
        pitch_id,
        recipient_id,
        track_id,
        sum(case when event_type = 'pitch_track_downloaded' then 1 else 0 end) as downloads,
        min(case when event_type = 'pitch_track_downloaded' then occurred_at end)
            as first_downloaded_at,
        sum(case when event_type = 'pitch_comment_added' then 1 else 0 end) as comment_count,
        max(occurred_at) as last_event_at
    from track_events
    group by pitch_id, recipient_id, track_id

),

shortlist_changes as (

    select
        pitch_id,
        recipient_id,
        track_id,
        event_type,
        occurred_at,
        row_number() over (
            partition by pitch_id, recipient_id, track_id
            order by occurred_at desc, received_at desc, event_id desc
        ) as recency
    from track_events
    where event_type in ('pitch_track_shortlisted', 'pitch_track_unshortlisted')

),

shortlist as (

    select
        pitch_id,
        recipient_id,
        track_id,
        event_type = 'pitch_track_shortlisted' as is_shortlisted,
        case when event_type = 'pitch_track_shortlisted' then occurred_at end as shortlisted_at
    from shortlist_changes
    where recency = 1

),

touched as (

    select pitch_id, recipient_id, track_id from plays
    union
    select pitch_id, recipient_id, track_id from feedback

)

select
    touched.pitch_id,
    touched.recipient_id,
    touched.track_id,
    coalesce(plays.plays, 0) as plays,
    coalesce(plays.listened_ms, 0) as listened_ms,
    plays.furthest_position_ms,
    coalesce(plays.rewound_ms, 0) as rewound_ms,
    coalesce(plays.completed_plays, 0) as completed_plays,
    coalesce(plays.skipped_plays, 0) as skipped_plays,
    plays.first_played_at,
    coalesce(feedback.downloads, 0) as downloads,
    feedback.first_downloaded_at,
    coalesce(shortlist.is_shortlisted, false) as is_shortlisted,
    shortlist.shortlisted_at,
    coalesce(feedback.comment_count, 0) as comment_count,
    case
        when plays.last_event_at is null then feedback.last_event_at
        when feedback.last_event_at is null then plays.last_event_at
        when feedback.last_event_at > plays.last_event_at then feedback.last_event_at
        else plays.last_event_at
    end as last_activity_at
from touched
left join plays
    on plays.pitch_id = touched.pitch_id
    and plays.recipient_id = touched.recipient_id
    and plays.track_id = touched.track_id
left join feedback
    on feedback.pitch_id = touched.pitch_id
    and feedback.recipient_id = touched.recipient_id
    and feedback.track_id = touched.track_id
left join shortlist
    on shortlist.pitch_id = touched.pitch_id
    and shortlist.recipient_id = touched.recipient_id
    and shortlist.track_id = touched.track_id
