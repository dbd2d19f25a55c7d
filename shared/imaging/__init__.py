"""Image bytes: checks and decoding, compressed streams, DICOM in and out, de-identification and metadata removal, maps as data."""
