{{ config(**daily_incremental_config()) }}

{#- Track x day: how much each track was played, listened to, downloaded, shortlisted and
    added to playlists, by users in the library and by pitch recipients. -#}

with track_events as (

    select
        dt,
        track_id,
        event_type,
        actor_type,
        actor_id,
        listened_ms
    from {{ ref('stg_lake__events') }}
    where event_type in (
            'track_stream_started',
            'track_playback_progress',
            'track_playback_completed',
            'track_downloaded',
            'pitch_track_played',
            'pitch_track_progress',
            'pitch_track_paused',
            'pitch_track_completed',
            'pitch_track_skipped',
            'pitch_track_downloaded',
            'pitch_track_shortlisted',
            'playlist_track_added'
        )
        and track_id is not null
        {{ and_since_cutoff('dt') }}

),

{#- Counted per event type first (one narrow aggregation over the events), then spread into
    columns over the much smaller result. -#}
by_type as (

    select
        dt,
        track_id,
        event_type,
        count(*) as events,
        sum(coalesce(listened_ms, 0)) as listened_ms
    from track_events
    group by dt, track_id, event_type

),

daily as (

    select
        dt,
        track_id,
        sum(case when event_type = 'track_stream_started' then events else 0 end) as streams,
        sum(
            case
                when event_type in ('track_playback_progress', 'track_playback_completed')
                    then listened_ms
                else 0
            end
        ) as stream_listened_ms,
        sum(case when event_type = 'track_playback_completed' then events else 0 end)
            as stream_completions,
        sum(case when event_type = 'track_downloaded' then events else 0 end) as downloads,
        sum(case when event_type = 'pitch_track_played' then events else 0 end) as pitch_plays,
        sum(
            case
                when event_type in (
                    'pitch_track_progress',
                    'pitch_track_paused',
                    'pitch_track_completed',
                    'pitch_track_skipped'
                ) then listened_ms
                else 0
            end
        ) as pitch_listened_ms,
        sum(case when event_type = 'pitch_track_completed' then events else 0 end)
            as pitch_completions,
        sum(case when event_type = 'pitch_track_downloaded' then events else 0 end)
            as pitch_downloads,
        sum(case when event_type = 'pitch_track_shortlisted' then events else 0 end)
            as shortlists,
        sum(case when event_type = 'playlist_track_added' then events else 0 end)
            as playlist_adds
    from by_type
    group by dt, track_id

),

{#- Read again rather than from track_events: only the two start partitions are read. -#}
listeners as (

    select dt, track_id, count(distinct actor_type || ':' || actor_id) as listeners
    from {{ ref('stg_lake__events') }}
    where event_type in ('track_stream_started', 'pitch_track_played')
        and track_id is not null
        {{ and_since_cutoff('dt') }}
    group by dt, track_id

)

select
    daily.track_id,
    daily.streams + daily.pitch_plays as plays,
    daily.stream_listened_ms + daily.pitch_listened_ms as listened_ms,
    coalesce(listeners.listeners, 0) as listeners,
    daily.streams,
    daily.stream_listened_ms,
    daily.stream_completions,
    daily.downloads,
    daily.pitch_plays,
    daily.pitch_listened_ms,
    daily.pitch_completions,
    daily.pitch_downloads,
    daily.shortlists,
    daily.playlist_adds,
    daily.dt
from daily
left join listeners
    on listeners.dt = daily.dt
    and listeners.track_id = daily.track_id
