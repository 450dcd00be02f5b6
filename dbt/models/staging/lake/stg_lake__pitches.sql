select
    cast(id as varchar) as pitch_id,
    cast(owner_id as varchar) as owner_id,
    cast(playlist_id as varchar) as playlist_id,
    cast(title as varchar) as title,
    cast(allow_download as boolean) as allows_download,
    cast(has_password as boolean) as has_password,
    {{ utc_timestamp('expires_at') }} as expires_at,
    {{ utc_timestamp('revoked_at') }} as revoked_at,
    cast(version as bigint) as version,
    {{ utc_timestamp('created_at') }} as created_at,
    {{ utc_timestamp('updated_at') }} as updated_at,
    cast(dt as date) as snapshot_dt
from {{ latest_snapshot('pitches') }} as pitches
