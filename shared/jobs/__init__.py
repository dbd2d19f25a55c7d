"""The life of a job: batches and jobs through their states, the queue, storage, deletion, idempotency keys and webhooks."""
