"""The admin API under ``/api/v1``: bearer API keys scoped to one workspace, JSON in and out."""
