{#- Per pitch and recipient: when the link was first sent (pitch_sent; a reissued link sends
    again), how often and when the page was opened, and comments on the pitch as a whole
    (pitch_comment_added without a track). -#}

select
    pitch_id,
    recipient_id,
    min(case when event_type = 'pitch_sent' then occurred_at end) as sent_at,
    sum(case when event_type = 'pitch_sent' then 1 else 0 end) as sends,
    min(case when event_type = 'pitch_opened' then occurred_at end) as first_opened_at,
    max(case when event_type = 'pitch_opened' then occurred_at end) as last_opened_at,
    sum(case when event_type = 'pitch_opened' then 1 else 0 end) as opens,
    sum(
        case when event_type = 'pitch_comment_added' and track_id is null then 1 else 0 end
    ) as pitch_comment_count
from {{ ref('stg_lake__events') }}
where event_type in ('pitch_sent', 'pitch_opened', 'pitch_comment_added')
    and pitch_id is not null
    and recipient_id is not null
group by pitch_id, recipient_id
