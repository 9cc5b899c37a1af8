"""The engine runtime: what `scenestream serve` loads.

`manifest.py` (what an engine is) → `loader.py` (find engines, choose a backend, load and warm)
→ `engine.py` (windows of many streams → one backend call → scores) over `backends/` (one file
per backend). `interface.py` is the protocol the service calls; `nets/` holds the PyTorch
networks of the bundled engines for the torch backend; `parity.py` and `latency.py` back the
`engines verify` and `engines bench` commands. Nothing here imports the lab (`engines.lab`).
"""
