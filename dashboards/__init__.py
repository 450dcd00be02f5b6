"""Reports and dashboards over the analytics marts.

``write_pitch_report`` (``musicsync report pitch``) and ``write_dashboard`` (``musicsync
dashboard``) read the marts ``musicsync analytics build`` leaves in its DuckDB warehouse and
write self-contained HTML pages (plotly.js inline: they read without a network connection).
``definitions`` generates the QuickSight and Tableau definitions from the marts' YAML, and
``quicksight_deploy`` applies the QuickSight ones. Nothing is imported here: each user loads
only what it needs (duckdb and plotly are heavy).
"""
