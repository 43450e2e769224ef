"""spml-pose-mediapipe: BlazePose keypoints through MediaPipe's Tasks API, offline.

Importing this package is cheap: mediapipe and cv2 load only when a video or frame is
estimated (see ``estimator.MediaPipePose``).
"""

from __future__ import annotations

__version__ = "0.1.0"
