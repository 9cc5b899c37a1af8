"""Object detections: box conversions, class-aware NMS, decoding of detector outputs, a
per-stream multi-object tracker and time-to-contact. Pure numpy, no I/O, no asyncio."""
