"""keypoints: see docs/architecture.md."""
