{{ config(**daily_incremental_config()) }}

{#- Day x container x codec: tracks uploaded and deleted, their bytes and duration, and what the
    catalogue holds at the end of the day in that format (tracks_stored, bytes_stored: every
    upload up to that day minus every deletion). A row for each day and format with an upload
    or a deletion. -#}

{%- set cutoff = incremental_cutoff() %}

with tracks as (

    select * from {{ ref('int_tracks_uploaded_and_deleted') }}

),

changes as (

    select
        uploaded_dt as dt,
        container,
        codec,
        1 as uploads,
        coalesce(size_bytes, 0) as uploaded_bytes,
        coalesce(duration_ms, 0) as uploaded_duration_ms,
        0 as deletions,
        0 as deleted_bytes,
        1 as stored_delta,
        coalesce(size_bytes, 0) as stored_bytes_delta
    from tracks
    where uploaded_dt is not null

    union all

    select
        deleted_dt as dt,
        container,
        codec,
        0 as uploads,
        0 as uploaded_bytes,
        0 as uploaded_duration_ms,
        1 as deletions,
        coalesce(size_bytes, 0) as deleted_bytes,
        case when uploaded_dt is not null then -1 else 0 end as stored_delta,
        -coalesce(size_bytes, 0) as stored_bytes_delta
    from tracks
    where deleted_dt is not null

),

daily as (

    select
        dt,
        container,
        codec,
        sum(uploads) as uploads,
        sum(uploaded_bytes) as uploaded_bytes,
        sum(uploaded_duration_ms) as uploaded_duration_ms,
        sum(deletions) as deletions,
        sum(deleted_bytes) as deleted_bytes,
        sum(stored_delta) as stored_delta,
        sum(stored_bytes_delta) as stored_bytes_delta
    from changes
    where true {{ and_since_cutoff('dt') }}
    group by dt, container, codec

),

before_window as (

    {%- if cutoff %}
    select container, codec, tracks_stored, bytes_stored
    from (
        select
            container,
            codec,
            tracks_stored,
            bytes_stored,
            row_number() over (partition by container, codec order by dt desc) as recency
        from {{ this }}
        where dt < {{ cutoff }}
    ) as built
    where recency = 1
    {%- else %}
    select
        cast(null as varchar) as container,
        cast(null as varchar) as codec,
        cast(0 as bigint) as tracks_stored,
        cast(0 as bigint) as bytes_stored
    where false
    {%- endif %}

)

select
    daily.container,
    daily.codec,
    daily.uploads,
    daily.uploaded_bytes,
    daily.uploaded_duration_ms,
    daily.deletions,
    daily.deleted_bytes,
    coalesce(before_window.tracks_stored, 0) + sum(daily.stored_delta) over (
        partition by daily.container, daily.codec
        order by daily.dt
        rows between unbounded preceding and current row
    ) as tracks_stored,
    coalesce(before_window.bytes_stored, 0) + sum(daily.stored_bytes_delta) over (
        partition by daily.container, daily.codec
        order by daily.dt
        rows between unbounded preceding and current row
    ) as bytes_stored,
    daily.dt
from daily
left join before_window
    on before_window.container = daily.container
    and before_window.codec = daily.codec
