"""spml-import-keypoints: keypoint importers for wide CSV tables and OpenPose BODY_25 JSON."""

from __future__ import annotations

__version__ = "0.1.0"
