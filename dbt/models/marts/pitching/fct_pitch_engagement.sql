{#- Pitch x recipient x track: what each recipient did with each track of each pitch.

    The rows: every recipient of a pitch (latest snapshot) times every track of that pitch, plus
    any pitch, recipient and track the events name (a track removed from a pitch since, a pitch
    newer than the latest snapshot). -#}

with interactions as (

    select * from {{ ref('int_pitch_interactions_by_track') }}

),

grid as (

    select
        recipients.pitch_id,
        recipients.recipient_id,
        pitch_tracks.track_id
    from {{ ref('stg_lake__pitch_recipients') }} as recipients
    inner join {{ ref('stg_lake__pitch_tracks') }} as pitch_tracks
        on pitch_tracks.pitch_id = recipients.pitch_id
    union
    select pitch_id, recipient_id, track_id from interactions

)

select
    grid.pitch_id,
    grid.recipient_id,
    grid.track_id,
    pitches.title as pitch_title,
    pitches.owner_id as pitch_owner_id,
    recipients.company as recipient_company,
    pitch_tracks.track_position,
    tracks.title as track_title,
    tracks.duration_ms,
    sends.sent_at,
    sends.first_opened_at,
    coalesce(interactions.plays, 0) as plays,
    coalesce(interactions.listened_ms, 0) as listened_ms,
    interactions.furthest_position_ms,
    case
        when tracks.duration_ms > 0 and interactions.furthest_position_ms is not null then
            least({{ ratio('interactions.furthest_position_ms', 'tracks.duration_ms') }}, 1.0)
    end as furthest_position_share,
    coalesce(interactions.completed_plays, 0) > 0 as completed,
    coalesce(interactions.skipped_plays, 0) > 0 as skipped,
    coalesce(interactions.skipped_plays, 0) as skipped_plays,
    coalesce(interactions.rewound_ms, 0) as rewound_ms,
    coalesce(interactions.downloads, 0) as downloads,
    coalesce(interactions.is_shortlisted, false) as shortlisted,
    interactions.shortlisted_at,
    coalesce(interactions.comment_count, 0) as comment_count,
    interactions.first_played_at,
    interactions.first_downloaded_at,
    interactions.last_activity_at
from grid
left join interactions
    on interactions.pitch_id = grid.pitch_id
    and interactions.recipient_id = grid.recipient_id
    and interactions.track_id = grid.track_id
left join {{ ref('int_pitch_sends_and_opens_by_recipient') }} as sends
    on sends.pitch_id = grid.pitch_id
    and sends.recipient_id = grid.recipient_id
left join {{ ref('stg_lake__pitches') }} as pitches
    on pitches.pitch_id = grid.pitch_id
left join {{ ref('stg_lake__pitch_recipients') }} as recipients
    on recipients.recipient_id = grid.recipient_id
left join {{ ref('stg_lake__pitch_tracks') }} as pitch_tracks
    on pitch_tracks.pitch_id = grid.pitch_id
    and pitch_tracks.track_id = grid.track_id
left join {{ ref('stg_lake__tracks') }} as tracks
    on tracks.track_id = grid.track_id
