{#- Ephemeral: inlined into int_pitch_interactions_by_track, its one reader, rather than
    written as a table of its own on every build (its tests and unit test still run). -#}
{{ config(materialized='ephemeral') }}

{#- One row per play of a pitch track by a recipient (play_number 0 gathers reports that came
    before any pitch_track_played: they count as listening, not as a play).

    furthest_position_ms: the greatest position reported while playing (progress, paused,
    completed, skipped); a seek moves the position without listening, so it does not count.
    rewound_ms: how far seeks moved the position back, in total (what can be listened twice
    within one play). A play is skipped when it listened under var('skip_threshold_ms') (30 s)
    and did not play to the end. -#}

with plays as (

    select
        pitch_id,
        recipient_id,
        track_id,
        play_number,
        min(case when event_type = 'pitch_track_played' then occurred_at end) as started_at,
        max(occurred_at) as last_event_at,
        coalesce(sum(listened_ms), 0) as listened_ms,
        max(
            case
                when event_type in (
                    'pitch_track_progress',
                    'pitch_track_paused',
                    'pitch_track_completed',
                    'pitch_track_skipped'
                ) then position_ms
            end
        ) as furthest_position_ms,
        coalesce(
            sum(
                case
                    when event_type = 'pitch_track_seeked' and seek_from_ms > position_ms
                        then seek_from_ms - position_ms
                end
            ),
            0
        ) as rewound_ms,
        sum(case when event_type = 'pitch_track_completed' then 1 else 0 end) > 0 as completed
    from {{ ref('int_pitch_playback_events_numbered_by_play') }}
    group by pitch_id, recipient_id, track_id, play_number

)

select
    pitch_id,
    recipient_id,
    track_id,
    play_number,
    started_at,
    last_event_at,
    listened_ms,
    furthest_position_ms,
    rewound_ms,
    completed,
    (
        play_number > 0
        and not completed
        and listened_ms < {{ var('skip_threshold_ms') }}
    ) as skipped
from plays
