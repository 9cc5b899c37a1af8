"""Generated audio-visual scenes with exact ground truth (synthetic camera, training, tests).

Layout, from the timeline down to the pixels and samples:
`script` (TOML scene scripts) and `dataset` (training windows) → `compose` (segments into a
scene) → `segments` (segment kinds) → `scene` (`Scene`, a `base.SceneRenderer`) drawing with
`video` and `sprites` and playing `audio` through `mix`; `speech` holds the utterance bank,
`pools` the per-split backgrounds, `truth` the fused-label derivation and the window rule,
`registry` the named scenarios and `render` the Y4M/WAV/JSON writer. Labels: README.md.
"""
