{#- The event types a user (rather than a pitch recipient or the system) can act in, from
    ingest/events/catalogue.py (a test keeps the two in step). Filtering on event_type, a
    partition column, lets the engines read only those partitions. -#}
{% macro user_event_types() -%}
  {{ return([
      'user_signed_in',
      'track_upload_started',
      'track_uploaded',
      'track_upload_rejected',
      'track_updated',
      'track_deleted',
      'track_stream_started',
      'track_playback_progress',
      'track_playback_completed',
      'track_downloaded',
      'playlist_created',
      'playlist_updated',
      'playlist_deleted',
      'playlist_track_added',
      'playlist_track_removed',
      'playlist_reordered',
      'share_created',
      'share_opened',
      'share_revoked',
      'pitch_created',
      'pitch_sent',
      'pitch_updated',
      'pitch_revoked',
      'search_performed',
  ]) }}
{%- endmacro %}


{#- `'a', 'b', ...`: a list of names as SQL string literals. -#}
{% macro quoted_list(values) -%}
  {%- for value in values %}'{{ value }}'{% if not loop.last %}, {% endif %}{% endfor -%}
{%- endmacro %}
