"""The load benchmark behind `scenestream bench` (the entry point is `stream.bench.run`).

Layout: `clip` renders the pre-encoded stream once, `sender` relays it into a server,
`servers` runs the measured server (the service, or `naive`, the per-frame baseline) in a
process of its own, `trial` measures one (server, N) run, `report` holds the pure statistics,
verdicts and the table.
"""
