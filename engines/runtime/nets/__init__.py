"""PyTorch networks of the bundled engines, loaded by the torch backend via the manifests'
`torch_factory` (`avfusion.py` with its in-graph log-mel `logmel.py`; `silero.py`)."""
