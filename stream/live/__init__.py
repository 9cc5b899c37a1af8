"""The live page (`/`) and its Server-Sent Events bridge from Redis (`/api/live`)."""
