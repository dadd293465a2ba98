"""Collect: engagement events in from the outside world, as the project's events (JSONL or Parquet parts).

`kafka_collect` (a Kafka topic, at least once; with `kafka_config`, `kafka_records`, `part_files`,
`kafka_consumer`), `kafka_produce` (a file replayed into a topic), `ubi` (OpenSearch User Behavior Insights, from
a bulk export or a cluster) and `clicklog` (a CSV/TSV/Parquet/JSONL click log mapped onto the events schema).
"""
