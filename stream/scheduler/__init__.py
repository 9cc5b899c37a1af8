"""Deadline scheduling: a pure batching policy per engine and the async runner around it."""
