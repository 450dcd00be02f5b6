{#- Usage events, one row per event: copies of a resent event (same event_id) are dropped,
    keeping the copy received first. The copies of one event share its event_id, event_type and
    occurred_at (the producer made them once), hence its dt: ranking within dt and event_type
    as well keeps the partition columns in the window's key, so that a filter on dt or
    event_type reaches the files (DuckDB) or the partitions (Athena) instead of every event
    being read and ranked first. A row_number subquery, not QUALIFY: Athena lacks it. -#}

with events as (

    select
        cast(dt as date) as dt,
        event_type,
        event_id,
        event_version,
        occurred_at,
        received_at,
        actor_type,
        actor_id,
        session_id,
        source,
        correlation_id,
        track_id,
        playlist_id,
        pitch_id,
        recipient_id,
        share_id,
        position_ms,
        listened_ms,
        bytes,
        result_count,
        latency_ms,
        properties
    from {{ source('lake', 'events') }}

),

ranked as (

    select
        *,
        row_number() over (
            partition by dt, event_type, event_id
            order by received_at
        ) as copy_number
    from events

)

select
    cast(event_id as varchar) as event_id,
    cast(event_type as varchar) as event_type,
    cast(event_version as bigint) as event_version,
    {{ utc_timestamp('occurred_at') }} as occurred_at,
    {{ utc_timestamp('received_at') }} as received_at,
    cast(actor_type as varchar) as actor_type,
    cast(actor_id as varchar) as actor_id,
    cast(session_id as varchar) as session_id,
    cast(source as varchar) as source,
    cast(correlation_id as varchar) as correlation_id,
    cast(track_id as varchar) as track_id,
    cast(playlist_id as varchar) as playlist_id,
    cast(pitch_id as varchar) as pitch_id,
    cast(recipient_id as varchar) as recipient_id,
    cast(share_id as varchar) as share_id,
    cast(position_ms as bigint) as position_ms,
    cast(listened_ms as bigint) as listened_ms,
    cast(bytes as bigint) as bytes,
    cast(result_count as bigint) as result_count,
    cast(latency_ms as bigint) as latency_ms,
    cast(properties as varchar) as properties,
    dt
from ranked
where copy_number = 1
    and {{ not_quarantined() }}
