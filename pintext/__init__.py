"""PinText: multitask word-level text embeddings served through OpenSearch and Elasticsearch.

    import pintext

    pins = pintext.open("model", url="http://localhost:9200", index="pins")
    pins.ingest("pins.jsonl")
    for hit in pins.search("red running shoes"):
        print(hit.id, hit.score, hit.title)

Importing this package must never import torch: serving runs on numpy alone (`pintext.train` imports it when
called).
"""

__version__ = "0.1.0"

__all__ = ["Encoder", "PinText", "open", "train", "pairs", "PinTextError", "UsageError", "ModelError", "BadInput",
           "IndexMissing", "IndexMismatch", "Unsupported", "EngineUnavailable", "WriteFailed", "__version__"]

_LAZY = {
    "Encoder": "pintext.encoder",
    "PinText": "pintext.api.service",
    "open": "pintext.api.service",
    "train": "pintext.api.training",
    "pairs": "pintext.api.training",
    **{name: "pintext.errors" for name in ("PinTextError", "UsageError", "ModelError", "BadInput", "IndexMissing",
                                           "IndexMismatch", "Unsupported", "EngineUnavailable", "WriteFailed")},
}


def __getattr__(name):
    # Lazy so that `import pintext` stays cheap for the CLI and for tools that only need the core.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pintext' has no attribute {name!r}")
