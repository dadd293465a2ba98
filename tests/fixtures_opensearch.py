"""Session fixtures for a live opensearch server (filled in by its issue)."""
