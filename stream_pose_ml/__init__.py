"""StreamPoseML's Python API, kept working on top of spml (a thin, documented facade).

Code written for StreamPoseML 0.3.1 keeps running unchanged::

    import stream_pose_ml.jobs.process_videos_job as pv
    pv.ProcessVideosJob().process_videos(src_videos_path=..., ...)

Each job delegates to spml_core (extraction: see docs/keypoints.md). Importing this
package is cheap: unlike StreamPoseML it does not load OpenCV or MediaPipe.
"""

from __future__ import annotations

from spml_core import __version__

__all__ = ["__version__"]
