"""Many workers on one Redis (or Redis Cluster): load advertisement, admission, cluster clients.

- `advert`: the pure part: a worker's advertisement (JSON), key names, choosing a peer with room.
- `redis_client`: one place that opens a plain or a cluster client (`redis.cluster`, or "auto"
  via `INFO cluster`).
- `directory`: `WorkerDirectory`, the Redis adapter: advertises this worker with a TTL, claims
  stream ids across workers (`SET NX`), finds a peer for a `307`, and publishes `offline` for
  the streams of a worker that died without saying so.
"""
