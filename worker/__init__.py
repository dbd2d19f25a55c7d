"""Celery workers: load a model artifact once per process and analyse jobs by id."""
