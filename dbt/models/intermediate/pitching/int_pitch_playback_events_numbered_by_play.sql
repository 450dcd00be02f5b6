{{ config(**daily_incremental_config()) }}

{#- The pitch player's reports, each numbered with the play it belongs to.

    A play starts with pitch_track_played (the page sends one each time a track is loaded and
    starts, and again after it played to its end); the progress, paused, seeked, completed and
    skipped reports that follow, up to the next pitch_track_played of the same recipient and
    track, belong to it. Reports before any pitch_track_played get play_number 0.
    Order: occurred_at, then, for reports made in the same instant, the end of a play
    (completed, skipped, paused) before the start of the next, and the start before the
    reports made while playing (progress, seeked); then event_id.
    Incremental by dt: every report of a day comes after every report of the days before, so
    an incremental run numbers the recomputed days' plays on from those numbered before. -#}

{%- set cutoff = incremental_cutoff() %}

with playback as (

    select
        pitch_id,
        recipient_id,
        track_id,
        event_id,
        event_type,
        occurred_at,
        position_ms,
        listened_ms,
        dt,
        try_cast({{ json_text('properties', 'from_ms') }} as bigint) as seek_from_ms,
        case
            when event_type in (
                'pitch_track_completed', 'pitch_track_skipped', 'pitch_track_paused'
            ) then 0
            when event_type = 'pitch_track_played' then 1
            else 2
        end as same_instant_order
    from {{ ref('stg_lake__events') }}
    where event_type in (
            'pitch_track_played',
            'pitch_track_progress',
            'pitch_track_paused',
            'pitch_track_seeked',
            'pitch_track_completed',
            'pitch_track_skipped'
        )
        and pitch_id is not null
        and recipient_id is not null
        and track_id is not null
        {{ and_since_cutoff('dt') }}

),

plays_before as (

    {%- if cutoff %}
    {#- Only the pitch, recipient and track pairs with reports in the recomputed days. -#}
    select built.pitch_id, built.recipient_id, built.track_id, max(built.play_number) as play_count
    from {{ this }} as built
    inner join (
        select distinct pitch_id, recipient_id, track_id from playback
    ) as recent
        on recent.pitch_id = built.pitch_id
        and recent.recipient_id = built.recipient_id
        and recent.track_id = built.track_id
    where built.dt < {{ cutoff }}
    group by built.pitch_id, built.recipient_id, built.track_id
    {%- else %}
    select
        cast(null as varchar) as pitch_id,
        cast(null as varchar) as recipient_id,
        cast(null as varchar) as track_id,
        cast(0 as bigint) as play_count
    where false
    {%- endif %}

),

numbered as (

    select
        *,
        sum(case when event_type = 'pitch_track_played' then 1 else 0 end) over (
            partition by pitch_id, recipient_id, track_id
            order by occurred_at, same_instant_order, event_id
            rows between unbounded preceding and current row
        ) as plays_so_far
    from playback

)

select
    numbered.pitch_id,
    numbered.recipient_id,
    numbered.track_id,
    numbered.event_id,
    numbered.event_type,
    numbered.occurred_at,
    numbered.position_ms,
    numbered.listened_ms,
    numbered.seek_from_ms,
    coalesce(plays_before.play_count, 0) + numbered.plays_so_far as play_number,
    numbered.dt
from numbered
left join plays_before
    on plays_before.pitch_id = numbered.pitch_id
    and plays_before.recipient_id = numbered.recipient_id
    and plays_before.track_id = numbered.track_id
