"""Pairs: engagement events (or imported rows) -> positive text pairs per task, split by anchor, as a pairs folder.

`rules` (what every engine shares), `folder` (the folder every build writes), one module per engine: `memory`
(the reference), `duckdb_engine` and `spark_engine` (both on `two_pass`), and `imported` (`--import FILE`).
"""
