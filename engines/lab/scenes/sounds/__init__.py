"""The training generator's sound families, each stateless per sample index (see `audio`).

`tonal` (one pitched source for all of them), `sirens`, `horns`, `alarms` (labelled
families), `distractors` (tonal and musical sounds with no label), `noises` (noise beds and
bursts), `recordings` (the real-sound `train` split, when fetched). What each label means is
written in the scenes README ("What each label means").
"""
