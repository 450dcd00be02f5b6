select
    cast(id as varchar) as user_id,
    cast(issuer as varchar) as issuer,
    {{ utc_timestamp('created_at') }} as created_at,
    cast(dt as date) as snapshot_dt
from {{ latest_snapshot('users') }} as users
