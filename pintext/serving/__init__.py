"""Serving: one protocol, one module per engine (OpenSearch, Elasticsearch, local), and the engine-free searcher."""
