"""Publishing to Redis: a pure bounded outbox and the redis.asyncio publisher around it."""
