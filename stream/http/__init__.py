"""The HTTP edge: WHIP (RFC 9725) ingest, health, metrics and the JSON API.

Every route is registered in one place, `stream/routes.py`. `whip.py` holds the WHIP handlers,
with offer validation (`sdp.py`), authentication (`auth.py`), CORS (`cors.py`), rate limits
(`ratelimit.py`), admission (`admission.py`); `api.py` the health, metrics and JSON handlers;
`problems.py` the RFC 9457 problem responses.
"""
