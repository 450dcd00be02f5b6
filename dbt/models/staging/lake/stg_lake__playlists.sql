select
    cast(id as varchar) as playlist_id,
    cast(owner_id as varchar) as owner_id,
    cast(title as varchar) as title,
    track_ids,
    {{ array_size('track_ids') }} as track_count,
    cast(version as bigint) as version,
    {{ utc_timestamp('created_at') }} as created_at,
    {{ utc_timestamp('updated_at') }} as updated_at,
    cast(dt as date) as snapshot_dt
from {{ latest_snapshot('playlists') }} as playlists
