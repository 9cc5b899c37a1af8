"""scenestream engines: manifests, models, backends, scenes, training and evaluation."""
