select
    cast(id as varchar) as upload_id,
    cast(owner_id as varchar) as owner_id,
    cast(status as varchar) as status,
    cast(rejection_code as varchar) as rejection_code,
    cast(declared_size as bigint) as declared_size,
    cast(content_type as varchar) as content_type,
    {{ utc_timestamp('created_at') }} as created_at,
    {{ utc_timestamp('expires_at') }} as expires_at,
    {{ utc_timestamp('finished_at') }} as finished_at,
    cast(track_id as varchar) as track_id,
    cast(dt as date) as snapshot_dt
from {{ latest_snapshot('uploads') }} as uploads
