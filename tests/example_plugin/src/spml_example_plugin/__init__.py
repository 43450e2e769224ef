"""An example spml plugin: a feature extractor giving each frame's visible-landmark count."""
