select
    cast(id as varchar) as recipient_id,
    cast(pitch_id as varchar) as pitch_id,
    cast(company as varchar) as company,
    {{ utc_timestamp('link_issued_at') }} as link_issued_at,
    {{ utc_timestamp('revoked_at') }} as revoked_at,
    {{ utc_timestamp('created_at') }} as created_at,
    cast(dt as date) as snapshot_dt
from {{ latest_snapshot('pitch_recipients') }} as pitch_recipients
