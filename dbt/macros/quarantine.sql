{#- A predicate leaving out the events partitions the lake's quality checks quarantined
    (var quarantined_partitions: [[dt, event_type], ...]); `true` when there are none. -#}
{% macro not_quarantined(dt_column='dt', event_type_column='event_type') -%}
  {%- set partitions = var('quarantined_partitions', []) -%}
  {%- if partitions | length == 0 -%}
    true
  {%- else -%}
    not (
    {%- for dt, event_type in partitions %}
      {% if not loop.first %}or {% endif -%}
      ({{ dt_column }} = date '{{ dt }}' and {{ event_type_column }} = '{{ event_type }}')
    {%- endfor %}
    )
  {%- endif -%}
{%- endmacro %}
