"""Session fixtures for a live kafka server (filled in by its issue)."""
