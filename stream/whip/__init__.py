"""WHIP (RFC 9725) ingest endpoint: HTTP routes, offer validation, auth and rate limiting."""
