"""The offline model lab: scene generation (`scenes/`), training (`training/`), evaluation
(`evaluation/`) and ONNX export of `avfusion` (`export.py`).

The lab imports the runtime (`engines.runtime`) to score windows exactly as the service does;
the runtime and the service's `serve` path never import the lab.
"""
