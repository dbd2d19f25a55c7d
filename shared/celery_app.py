"""The Celery app for tools that only need the broker's address (``celery -A shared.celery_app flower``):
no model, no TensorFlow."""
from shared.config import load_settings
from shared.queue import create_celery

app = create_celery(load_settings())
