"""Ground truth for batches: the label file that comes with a batch, readers' labels from the viewer, reader
grants, and the evaluations computed from them (off the request path: by the worker that finishes a batch,
or by the recovery loop)."""
