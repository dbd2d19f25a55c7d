"""Running the processes: the one configuration object, logs, metrics, loops."""
