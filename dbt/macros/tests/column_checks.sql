{#- The values of several columns checked in one query (one pass over the model, one dbt test,
    instead of one per column and rule): rows where a `not_null` column is null, a
    `not_negative` one is below zero, a `between` one ({column: [low, high]}) is outside its
    bounds, or an `accepted` one ({column: [values]}) holds another value. -#}
{% test column_values(model, not_null=[], not_negative=[], between={}, accepted={}) %}

select *
from {{ model }}
where false
    {%- for column in not_null %}
    or {{ column }} is null
    {%- endfor %}
    {%- for column in not_negative %}
    or {{ column }} < 0
    {%- endfor %}
    {%- for column, bounds in between.items() %}
    or {{ column }} < {{ bounds[0] }} or {{ column }} > {{ bounds[1] }}
    {%- endfor %}
    {%- for column, values in accepted.items() %}
    or {{ column }} not in ({% for value in values %}'{{ value }}'{% if not loop.last %}, {% endif %}{% endfor %})
    {%- endfor %}

{% endtest %}
