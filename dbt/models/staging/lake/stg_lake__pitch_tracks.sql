select
    cast(pitch_id as varchar) as pitch_id,
    cast(track_id as varchar) as track_id,
    cast("position" as bigint) as track_position,
    cast(dt as date) as snapshot_dt
from {{ latest_snapshot('pitch_tracks') }} as pitch_tracks
