"""Where PinText keeps downloads, managed servers and their state.

Everything lives under one cache folder so that a second run reuses what the first downloaded.
"""

import os
from pathlib import Path


def pintext_home() -> Path:
    """The cache folder: $PINTEXT_HOME, else ~/.cache/pintext."""
    override = os.environ.get("PINTEXT_HOME")
    base = Path(override) if override else Path.home() / ".cache" / "pintext"
    return base.expanduser().resolve()
