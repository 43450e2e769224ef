"""spml entry point (group ``spml``, name ``pose_mediapipe``): registers the mediapipe pose estimator."""

from __future__ import annotations

from spml_core import hookimpl


@hookimpl
def spml_pose_estimators() -> list[type]:
    """The MediaPipe BlazePose estimator (component name ``mediapipe``)."""
    from spml_pose_mediapipe.estimator import MediaPipePose

    return [MediaPipePose]
