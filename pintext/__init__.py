"""PinText: multitask word-level text embeddings served through OpenSearch.

Importing this package must never import torch: serving runs on numpy alone.
"""

__version__ = "0.1.0"

__all__ = ["Encoder", "__version__"]


def __getattr__(name):
    # Lazy so that `import pintext` stays cheap for the CLI and for tools that only need the core.
    if name == "Encoder":
        from pintext.encoder import Encoder

        return Encoder
    raise AttributeError(f"module 'pintext' has no attribute {name!r}")
