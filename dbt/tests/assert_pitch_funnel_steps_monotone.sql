{#- The funnel's steps come in order: a step is reached only after every step before it, and
    never earlier. -#}

select *
from {{ ref('fct_pitch_funnel') }}
where (opened_at is not null and (sent_at is null or opened_at < sent_at))
    or (played_at is not null and (opened_at is null or played_at < opened_at))
    or (downloaded_at is not null and (played_at is null or downloaded_at < played_at))
    or (shortlisted_at is not null and (downloaded_at is null or shortlisted_at < downloaded_at))
