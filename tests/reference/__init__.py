"""An independent reference model of ``docs/analytics.md`` (see ``model.py``)."""
