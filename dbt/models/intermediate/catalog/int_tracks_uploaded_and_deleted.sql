{#- One row per track the events saw uploaded or deleted: when and in what format it was
    uploaded (track_uploaded: file size, container, codec, duration) and when it was deleted.
    A track deleted without an upload event in the lake has an unknown format and size. -#}

with uploads as (

    select
        track_id,
        occurred_at,
        dt,
        bytes,
        {{ json_text('properties', 'container') }} as container,
        {{ json_text('properties', 'codec') }} as codec,
        try_cast({{ json_text('properties', 'duration_ms') }} as bigint) as duration_ms,
        row_number() over (partition by track_id order by occurred_at, event_id) as nth
    from {{ ref('stg_lake__events') }}
    where event_type = 'track_uploaded'
        and track_id is not null

),

deletions as (

    select
        track_id,
        occurred_at,
        dt,
        row_number() over (partition by track_id order by occurred_at, event_id) as nth
    from {{ ref('stg_lake__events') }}
    where event_type = 'track_deleted'
        and track_id is not null

),

first_uploads as (

    select * from uploads where nth = 1

),

first_deletions as (

    select * from deletions where nth = 1

)

select
    coalesce(first_uploads.track_id, first_deletions.track_id) as track_id,
    first_uploads.occurred_at as uploaded_at,
    first_uploads.dt as uploaded_dt,
    first_uploads.bytes as size_bytes,
    coalesce(first_uploads.container, 'unknown') as container,
    coalesce(first_uploads.codec, 'unknown') as codec,
    first_uploads.duration_ms,
    first_deletions.occurred_at as deleted_at,
    first_deletions.dt as deleted_dt
from first_uploads
full outer join first_deletions
    on first_deletions.track_id = first_uploads.track_id
