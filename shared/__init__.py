"""What two or more parts of the service use, grouped by what changes together (README "Layout"):
``auth`` (users, tokens, sessions, audit), ``db`` (ORM models, session factory, migrations), ``imaging``
(image bytes, DICOM, de-identification, maps), ``jobs`` (job states, queue, storage, deletion, webhooks),
``model`` (the artifact's manifest, labels, preprocessing) and ``ops`` (config, logs, metrics, loops).
Imports nothing of web/, worker/, training/, pacs/ or client/."""
