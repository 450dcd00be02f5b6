{#- Track: the catalogue as of the latest snapshot, for naming tracks in reports. -#}

select
    track_id,
    owner_id,
    title,
    artists_text as artists,
    album,
    release_year,
    genre,
    mood,
    is_instrumental,
    duration_ms,
    container,
    codec,
    size_bytes,
    created_at,
    updated_at
from {{ ref('stg_lake__tracks') }}
