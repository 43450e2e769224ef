"""Built-in feature extractors (numpy only): normalized coordinates, angles, distances, velocities.

Each is a FeatureExtractor component registered by ``spml_core.builtin``; see docs/features.md for
the exact definitions. ``transform(xyzv, width, height)`` takes (frames, 33, 4) keypoints with x, y
as fractions of the image and returns a (frames, len(columns())) float64 array, NaN where no person.
"""
