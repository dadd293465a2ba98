"""Synth: synthetic pins, users and engagement events with a known latent structure (`generator`), drawn from the
project's English topic vocabulary (`vocabulary`, read from the package's `vocabulary.txt`)."""
