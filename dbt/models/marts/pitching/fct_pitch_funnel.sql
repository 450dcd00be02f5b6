{#- Pitch x recipient: how far each recipient went, sent -> opened -> played -> downloaded ->
    shortlisted, and when.

    A step is reached once it and every step before it happened; it is reached at the latest
    of their first times (so reached times never go back: a recipient who shortlisted before
    downloading reaches "shortlisted" when they download). "shortlisted" counts tracks still
    shortlisted at the end (their shortlisting in force), not ones taken off again.
    The rows: every recipient of the latest snapshot, plus any the events name. -#}

with sends as (

    select * from {{ ref('int_pitch_sends_and_opens_by_recipient') }}

),

tracks as (

    select
        pitch_id,
        recipient_id,
        sum(plays) as plays,
        sum(listened_ms) as listened_ms,
        sum(downloads) as downloads,
        sum(case when is_shortlisted then 1 else 0 end) as shortlisted_tracks,
        sum(comment_count) as track_comment_count,
        min(first_played_at) as first_played_at,
        min(first_downloaded_at) as first_downloaded_at,
        min(shortlisted_at) as first_shortlisted_at
    from {{ ref('int_pitch_interactions_by_track') }}
    group by pitch_id, recipient_id

),

recipients as (

    select pitch_id, recipient_id from {{ ref('stg_lake__pitch_recipients') }}
    union
    select pitch_id, recipient_id from sends
    union
    select pitch_id, recipient_id from tracks

),

firsts as (

    select
        recipients.pitch_id,
        recipients.recipient_id,
        sends.sent_at,
        sends.first_opened_at,
        tracks.first_played_at,
        tracks.first_downloaded_at,
        tracks.first_shortlisted_at,
        coalesce(sends.sends, 0) as sends,
        coalesce(sends.opens, 0) as opens,
        coalesce(tracks.plays, 0) as plays,
        coalesce(tracks.listened_ms, 0) as listened_ms,
        coalesce(tracks.downloads, 0) as downloads,
        coalesce(tracks.shortlisted_tracks, 0) as shortlisted_tracks,
        coalesce(tracks.track_comment_count, 0) + coalesce(sends.pitch_comment_count, 0)
            as comment_count
    from recipients
    left join sends
        on sends.pitch_id = recipients.pitch_id
        and sends.recipient_id = recipients.recipient_id
    left join tracks
        on tracks.pitch_id = recipients.pitch_id
        and tracks.recipient_id = recipients.recipient_id

),

opened as (

    select
        *,
        case
            when sent_at is not null and first_opened_at is not null
                then greatest(sent_at, first_opened_at)
        end as opened_at
    from firsts

),

played as (

    select
        *,
        case
            when opened_at is not null and first_played_at is not null
                then greatest(opened_at, first_played_at)
        end as played_at
    from opened

),

downloaded as (

    select
        *,
        case
            when played_at is not null and first_downloaded_at is not null
                then greatest(played_at, first_downloaded_at)
        end as downloaded_at
    from played

),

shortlisted as (

    select
        *,
        case
            when downloaded_at is not null and first_shortlisted_at is not null
                then greatest(downloaded_at, first_shortlisted_at)
        end as shortlisted_at
    from downloaded

)

select
    shortlisted.pitch_id,
    shortlisted.recipient_id,
    pitches.title as pitch_title,
    pitches.owner_id as pitch_owner_id,
    pitch_recipients.company as recipient_company,
    shortlisted.sent_at,
    shortlisted.opened_at,
    shortlisted.played_at,
    shortlisted.downloaded_at,
    shortlisted.shortlisted_at,
    shortlisted.sent_at is not null as is_sent,
    shortlisted.opened_at is not null as is_opened,
    shortlisted.played_at is not null as is_played,
    shortlisted.downloaded_at is not null as is_downloaded,
    shortlisted.shortlisted_at is not null as is_shortlisted,
    case
        when shortlisted.shortlisted_at is not null then 'shortlisted'
        when shortlisted.downloaded_at is not null then 'downloaded'
        when shortlisted.played_at is not null then 'played'
        when shortlisted.opened_at is not null then 'opened'
        when shortlisted.sent_at is not null then 'sent'
        else 'not sent'
    end as furthest_step,
    {{ seconds_between('shortlisted.sent_at', 'shortlisted.opened_at') }} as seconds_sent_to_opened,
    {{ seconds_between('shortlisted.opened_at', 'shortlisted.played_at') }}
        as seconds_opened_to_played,
    {{ seconds_between('shortlisted.played_at', 'shortlisted.downloaded_at') }}
        as seconds_played_to_downloaded,
    {{ seconds_between('shortlisted.downloaded_at', 'shortlisted.shortlisted_at') }}
        as seconds_downloaded_to_shortlisted,
    shortlisted.sends,
    shortlisted.opens,
    shortlisted.plays,
    shortlisted.listened_ms,
    shortlisted.downloads,
    shortlisted.shortlisted_tracks,
    shortlisted.comment_count
from shortlisted
left join {{ ref('stg_lake__pitches') }} as pitches
    on pitches.pitch_id = shortlisted.pitch_id
left join {{ ref('stg_lake__pitch_recipients') }} as pitch_recipients
    on pitch_recipients.recipient_id = shortlisted.recipient_id
