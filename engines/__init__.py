"""scenestream engines: the lower layer, which never imports the service (`stream`).

- `window.py`, `labels.py`, `events.py`, `config.py`, `errors.py`: what the engines share with
  the service (the window contract, the label vocabulary, scores → lifecycle events, the engines'
  configuration, the user-error type);
- `runtime/`: what `serve` loads (manifests, loader, engine, backends, bundled networks);
- `bundled/`: the bundled engines' manifests and model files;
- `lab/`: the offline model lab (scenes, training, evaluation, export), which may import the
  runtime, never the reverse.
"""
