"""`scenestream send`: a WHIP client publishing a scene, a media file or a capture device."""
