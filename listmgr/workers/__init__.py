"""Dramatiq actors: thin, idempotent, ids in."""
