"""The ingest service: the only door for agency data (HTTP and raw Kafka topics)."""
