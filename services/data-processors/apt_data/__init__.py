"""data-processors: ingest, clean, filter, deduplicate and split text into store datasets."""
