"""scenestream: the service — everything between the WebRTC socket and Redis."""

__version__ = "0.1.0"
