"""Model input rows for every window of a whole keypoint sequence at once (batch prediction).

The rows equal what the live buffer returns when the same frames are pushed one by one: per-frame
features are computed once over the whole sequence (temporal features see the frames before, as
live), then each window of ``spec.window`` frames is laid out as the spec says.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from spml_core.errors import SpmlError
from spml_core.features.compute import (
    _finish,
    _live_window,
    build_rows_fixed,
    frame_features,
)
from spml_core.features.spec import FeaturePipelineSpec
from spml_core.keypoints.skeleton import N_LANDMARKS

# Windows turned into rows per step: bounds memory for flattened rows of long videos.
CHUNK_WINDOWS = 4096


def sequence_rows(
    spec: FeaturePipelineSpec, xyzv: np.ndarray, width: int, height: int, chunk: int = CHUNK_WINDOWS
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index of the window's last frame, rows float32) for every full window, in chunks."""
    spec = spec if spec.is_resolved else spec.resolve()
    arr = np.asarray(xyzv, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (N_LANDMARKS, 4):
        raise SpmlError(f"sequence_rows expects keypoints shaped (frames, {N_LANDMARKS}, 4), got {arr.shape}")
    window = _live_window(spec)
    if len(arr) < window:
        return
    layout = spec.layout_info()
    feats = frame_features(spec._extractors(), arr, width, height, temporal_blocks=None)
    # (n - W + 1, F, W) view -> (n - W + 1, W, F): window i holds frames i .. i + W - 1.
    windows = np.lib.stride_tricks.sliding_window_view(feats, window, axis=0).transpose(0, 2, 1)
    for a in range(0, len(windows), chunk):
        block = np.ascontiguousarray(windows[a:a + chunk])
        yield a + window - 1, _finish(build_rows_fixed(block, layout), spec.decimals)
