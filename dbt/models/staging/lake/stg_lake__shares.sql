select
    cast(id as varchar) as share_id,
    cast(owner_id as varchar) as owner_id,
    cast(object_type as varchar) as object_type,
    cast(track_id as varchar) as track_id,
    cast(playlist_id as varchar) as playlist_id,
    cast(grantee_id as varchar) as grantee_id,
    cast(pending as boolean) as is_pending,
    cast(permission as varchar) as permission,
    {{ utc_timestamp('created_at') }} as created_at,
    {{ utc_timestamp('updated_at') }} as updated_at,
    {{ utc_timestamp('revoked_at') }} as revoked_at,
    cast(dt as date) as snapshot_dt
from {{ latest_snapshot('shares') }} as shares
