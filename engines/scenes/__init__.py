"""Generated audio-visual scenes with exact ground truth (synthetic camera, training, tests)."""
