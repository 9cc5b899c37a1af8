"""The load benchmark behind `scenestream bench`, in its one home (the command itself is
`stream.commands.bench`).

Layout: `campaign` runs the trials a command asked for (one N, or a capacity search) and
writes the results; `clip` renders the pre-encoded stream once, `sender` relays it into a server,
`servers` runs the measured server (the service, or `naive`, the per-frame baseline) in a
process of its own, `trial` measures one (server, N) run, `report` holds the pure statistics,
verdicts and the table.
"""
