"""WebRTC adapters (aiortc/aioice glue). Every reach into aiortc internals lives in this package."""
