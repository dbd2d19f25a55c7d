"""Code every process of the service shares: config, database, storage, images, labels, job states, queue."""
