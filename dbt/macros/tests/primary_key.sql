{#- The grain test: every row has all of `columns` and no two rows share them; one pass over
    the model instead of a unique and a not_null test per column. -#}
{% test primary_key(model, columns) %}

select
    {{ columns | join(', ') }},
    count(*) as rows_with_these_keys
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
    {%- for column in columns %}
    or {{ column }} is null
    {%- endfor %}

{% endtest %}
