"""PinText's application layer: what `pintext.open(...)`, `pintext.train(...)` and `pintext.pairs(...)` do, with the
policy the `pintext` command, the evaluation and the benchmarks all share (they call these, in-process).

- `connection`: model, engine, index name and `_meta`, resolved lazily;
- `indexing`: create (tokens tuned on the corpus), delete, describe, promote;
- `ingesting`: a pins file into the index, with dead letter, checkpoint and lock;
- `search`: the query policy (PinText, exact-match signal, hybrid, BM25 fallback); `explain`: per-word shares;
- `dsl`: the requests a search sends; `failures`: engine failures as `pintext.errors` types;
- `service`: the `PinText` object `pintext.open` returns.
"""
