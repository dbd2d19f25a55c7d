"""The Celery app for tools that only need the broker's address (``celery -A shared.jobs.celery_app flower``):
no model, no TensorFlow."""
from shared.jobs.queue import create_celery
from shared.ops.config import load_settings

app = create_celery(load_settings())
