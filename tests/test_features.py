"""Built-in feature extractors: exact values on hand-made skeletons, invariances (hypothesis), NaN handling."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from spml_core.features.angles import SegmentAngles
from spml_core.features.distances import PlumbLineDistances
from spml_core.features.joints import RawJoints
from spml_core.features.normalized import NormalizedCoordinates
from spml_core.features.velocities import Velocities
from spml_core.features.angles import ANGLE_NAMES, ANGLES, VECTORS
from spml_core.features.distances import DISTANCE_JOINTS
from spml_core.features.geometry import EXT_INDEX, pixel_points
from spml_core.registry import Registry
from spml_core.keypoints.skeleton import INDEX, LANDMARK_NAMES

W, H = 1280, 720


def skeleton_px(points: dict[str, tuple[float, float]], width: float = W, height: float = H, fill=(0.5, 0.5)) -> np.ndarray:
    """A (1, 33, 4) frame from pixel positions of some joints (others at ``fill``, in pixels)."""
    xyzv = np.zeros((1, 33, 4))
    xyzv[0, :, 0] = fill[0] / width
    xyzv[0, :, 1] = fill[1] / height
    xyzv[0, :, 3] = 1.0
    for name, (x, y) in points.items():
        xyzv[0, INDEX[name], 0] = x / width
        xyzv[0, INDEX[name], 1] = y / height
    return xyzv


def random_skeleton(rng: np.random.Generator, frames: int = 1) -> np.ndarray:
    """Plausible-size random skeletons: every joint somewhere in a 600 x 600 px box, z small."""
    xyzv = np.empty((frames, 33, 4))
    xyzv[..., 0] = rng.uniform(300, 900, (frames, 33)) / W
    xyzv[..., 1] = rng.uniform(50, 650, (frames, 33)) / H
    xyzv[..., 2] = rng.uniform(-100, 100, (frames, 33)) / W
    xyzv[..., 3] = rng.uniform(0, 1, (frames, 33))
    return xyzv


def _angle(name: str, out: np.ndarray) -> float:
    return float(out[0, ANGLE_NAMES.index(name)])


# -- registry and columns -----------------------------------------------------------------------------
def test_builtins_are_registered_with_documented_column_counts():
    reg = Registry(autoload=False).load()
    assert reg.names("feature_extractor") == ["angles", "distances", "joints", "normalized", "velocities"]
    assert len(reg.create("feature_extractor", "angles").columns()) == 35
    assert len(reg.create("feature_extractor", "angles", {"mode": "both"}).columns()) == 70
    assert len(reg.create("feature_extractor", "distances").columns()) == 23
    assert len(reg.create("feature_extractor", "normalized").columns()) == 66
    assert len(reg.create("feature_extractor", "normalized", {"include_z": True}).columns()) == 99
    assert len(reg.create("feature_extractor", "joints", {"include_z": True, "include_visibility": True}).columns()) == 132
    vel = reg.create("feature_extractor", "velocities", {"of": {"angles": {}, "distances": {}}})
    assert vel.columns()[:2] == [f"{ANGLE_NAMES[0]}_angle_2d_degrees_velocity", f"{ANGLE_NAMES[1]}_angle_2d_degrees_velocity"]
    assert len(vel.columns()) == 58


def test_angle_set_fixes_streamposeml_bugs():
    # B2: the right forearm is the right elbow -> right wrist.
    assert VECTORS["right_elbow_right_wrist"] == ("right_elbow", "right_wrist")
    # B3: no constant or duplicate angles; the missing right elbow / knee / ankle-toe angles exist.
    pairs = [tuple(p) for p in ANGLES]
    assert len(set(pairs)) == len(pairs) == 35
    assert all(a != b for a, b in ANGLES)
    for added in ("right_shoulder_right_elbow_to_right_elbow_right_wrist",
                  "right_hip_right_knee_to_right_knee_right_ankle",
                  "right_knee_right_ankle_to_right_ankle_right_foot_index"):
        assert added in ANGLE_NAMES
    for dropped in ("neck_mid_hip_to_plumb_line", "right_ankle_right_heel_to_neck_mid_hip",
                    "neck_mid_hip_to_mid_hip_left_hip", "left_shoulder_left_elbow_to_right_elbow_right_wrist"):
        assert dropped not in ANGLE_NAMES
    assert len(DISTANCE_JOINTS) == 23


# -- exact values -----------------------------------------------------------------------------------
def test_angles_are_measured_in_pixels_not_distorted_normalised_units():
    # Upper arm straight down from the shoulder; forearm 100 px right and 100 px down: 45 degrees in pixels.
    # In normalised units the forearm would be (100/1280, 100/720), i.e. about 29.4 degrees (StreamPoseML's B6).
    frame = skeleton_px({"right_shoulder": (500, 200), "right_elbow": (500, 300), "right_wrist": (600, 400)})
    out = SegmentAngles().transform(frame, W, H)
    assert _angle("right_shoulder_right_elbow_to_right_elbow_right_wrist", out) == pytest.approx(45.0, abs=1e-9)
    # Straight limb: 0 degrees between directed segments (StreamPoseML's convention).
    frame = skeleton_px({"left_hip": (400, 400), "left_knee": (400, 500), "left_ankle": (400, 600)})
    out = SegmentAngles().transform(frame, W, H)
    assert _angle("left_hip_left_knee_to_left_knee_left_ankle", out) == pytest.approx(0.0, abs=1e-9)


def test_right_forearm_angle_follows_the_right_wrist_only():
    base = {"left_shoulder": (600, 200), "right_shoulder": (400, 200), "left_hip": (580, 500),
            "right_hip": (420, 500), "right_elbow": (380, 320), "right_wrist": (370, 430),
            "left_elbow": (620, 320), "left_wrist": (630, 430)}
    moved = dict(base, right_wrist=(300, 330))
    a = SegmentAngles().transform(skeleton_px(base), W, H)
    b = SegmentAngles().transform(skeleton_px(moved), W, H)
    changed = {ANGLE_NAMES[i] for i in np.flatnonzero(~np.isclose(a[0], b[0], equal_nan=True))}
    assert changed == {"right_elbow_right_wrist_to_plumb_line",
                       "right_shoulder_right_elbow_to_right_elbow_right_wrist"}


def test_distance_uses_the_true_plumb_line_midpoint():
    # Inventory B1: joint (0,0), plumb line (3,0)->(3,4): the midpoint is (3,2), distance sqrt(13).
    pts = {"nose": (0, 0), "left_shoulder": (2, 0), "right_shoulder": (4, 0), "left_hip": (2, 4), "right_hip": (4, 4)}
    frame = skeleton_px(pts, width=100, height=100)
    raw = PlumbLineDistances({"normalize": False}).transform(frame, 100, 100)
    assert raw[0, DISTANCE_JOINTS.index("nose")] == pytest.approx(math.sqrt(13), rel=1e-12)
    # Normalised by the hip width (2 px).
    norm = PlumbLineDistances().transform(frame, 100, 100)
    assert norm[0, DISTANCE_JOINTS.index("nose")] == pytest.approx(math.sqrt(13) / 2, rel=1e-12)
    # mid_hip lies on the plumb line, 2 px from its midpoint: 1 hip width.
    assert norm[0, DISTANCE_JOINTS.index("mid_hip")] == pytest.approx(1.0, rel=1e-12)


def test_normalized_is_relative_to_mid_hip_in_hip_widths_or_torso_lengths():
    # Inventory 2.2's example, in pixels: hips (400,600) and (600,600), nose (500,200).
    pts = {"left_hip": (400, 600), "right_hip": (600, 600), "nose": (500, 200),
           "left_shoulder": (450, 300), "right_shoulder": (550, 300)}
    frame = skeleton_px(pts, width=1000, height=1000)
    out = NormalizedCoordinates().transform(frame, 1000, 1000).reshape(33, 2)
    assert out[INDEX["nose"]] == pytest.approx([0.0, -2.0])  # StreamPoseML's formula gives (2.0, 0.4)
    torso = NormalizedCoordinates({"body_size": "torso"}).transform(frame, 1000, 1000).reshape(33, 2)
    assert torso[INDEX["nose"]] == pytest.approx([0.0, -400 / 300])


# -- invariances (hypothesis) --------------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), dx=st.floats(-2000, 2000), dy=st.floats(-2000, 2000),
       scale=st.floats(0.05, 20), body=st.sampled_from(["hip_width", "torso"]))
def test_normalized_invariant_to_translation_and_uniform_scale(seed, dx, dy, scale, body):
    rng = np.random.default_rng(seed)
    xyzv = random_skeleton(rng, 3)
    ext = NormalizedCoordinates({"body_size": body, "include_z": True})
    before = ext.transform(xyzv, W, H)
    assume(np.isfinite(before).all() and np.abs(before).max() < 1e4)
    moved = xyzv.copy()
    # Translate and scale in pixel space (about the image origin), z scaled with x.
    moved[..., 0] = (xyzv[..., 0] * W * scale + dx) / W
    moved[..., 1] = (xyzv[..., 1] * H * scale + dy) / H
    moved[..., 2] = xyzv[..., 2] * scale
    np.testing.assert_allclose(ext.transform(moved, W, H), before, atol=1e-5, rtol=0)
    # Distances divided by the body size share the invariance.
    dist = PlumbLineDistances({"body_size": body, "mode": "both"})
    np.testing.assert_allclose(dist.transform(moved, W, H), dist.transform(xyzv, W, H), atol=1e-5, rtol=0)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), theta=st.floats(-math.pi, math.pi),
       cx=st.floats(0, 1280), cy=st.floats(0, 720), scale=st.floats(0.2, 5))
def test_angles_invariant_to_rotation_of_the_image_plane(seed, theta, cx, cy, scale):
    rng = np.random.default_rng(seed)
    xyzv = random_skeleton(rng, 2)
    pts = pixel_points(xyzv, W, H)
    # Every segment of the angle set at least 1 px long: otherwise the angle is (rightly) NaN.
    from spml_core.features.angles import _FROM, _TO

    seg = np.linalg.norm(pts[:, _TO, :2] - pts[:, _FROM, :2], axis=-1)
    assume(seg.min() > 1.0)
    x, y = xyzv[..., 0] * W - cx, xyzv[..., 1] * H - cy
    c, s = math.cos(theta), math.sin(theta)
    rotated = xyzv.copy()
    rotated[..., 0] = (scale * (c * x - s * y) + cx) / W
    rotated[..., 1] = (scale * (s * x + c * y) + cy) / H
    ext = SegmentAngles()
    np.testing.assert_allclose(ext.transform(rotated, W, H), ext.transform(xyzv, W, H), atol=1e-6, rtol=0)


# -- missing people and degenerate geometry ---------------------------------------------------------------
@pytest.mark.parametrize("ext", [NormalizedCoordinates(), SegmentAngles({"mode": "both"}),
                                 PlumbLineDistances({"mode": "both"}), RawJoints(), Velocities()],
                         ids=lambda e: e.name)
def test_frame_without_person_gives_nan_row_and_no_warning(ext):
    xyzv = random_skeleton(np.random.default_rng(1), 4)
    xyzv[2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ext.transform(xyzv.astype(np.float32), W, H)
    assert out.shape == (4, len(ext.columns()))
    assert np.isnan(out[2]).all()
    rows = [0, 1, 3] if ext.name != "velocities" else [1]  # velocities: no previous frame for 0, none for 3
    assert np.isfinite(out[rows]).all()


def test_zero_length_segments_and_coincident_hips_give_nan_without_warnings():
    # Every joint at the same point: every segment has zero length and the hip width is zero.
    xyzv = np.full((2, 33, 4), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        angles = SegmentAngles({"mode": "both"}).transform(xyzv, W, H)
        norm = NormalizedCoordinates().transform(xyzv, W, H)
        dist = PlumbLineDistances().transform(xyzv, W, H)
        raw = PlumbLineDistances({"normalize": False}).transform(xyzv, W, H)
    assert np.isnan(angles).all() and np.isnan(norm).all() and np.isnan(dist).all()
    assert (raw == 0).all()  # pixel distances are well defined (zero)


def test_velocities_are_frame_differences_of_the_base_features():
    xyzv = random_skeleton(np.random.default_rng(3), 5)
    base = NormalizedCoordinates({"body_size": "torso"}).transform(xyzv, W, H)
    vel = Velocities({"of": {"normalized": {"body_size": "torso"}}}).transform(xyzv, W, H)
    assert np.isnan(vel[0]).all()
    np.testing.assert_array_equal(vel[1:], base[1:] - base[:-1])


def test_bad_options_and_shapes_are_clear_errors():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="unknown base feature"):
        Velocities({"of": {"speed": {}}})
    with pytest.raises(ValidationError, match="hip_width"):
        NormalizedCoordinates({"body_size": "height"})
    with pytest.raises(ValueError, match=r"shape \(frames, 33, 4\)"):
        SegmentAngles().transform(np.zeros((3, 17, 4)), W, H)


def test_pixel_points_adds_neck_and_mid_hip():
    frame = skeleton_px({"left_shoulder": (100, 100), "right_shoulder": (300, 140),
                         "left_hip": (120, 400), "right_hip": (280, 420)})
    pts = pixel_points(frame, W, H)
    assert pts.shape == (1, 35, 3)
    assert pts[0, EXT_INDEX["neck"], :2] == pytest.approx([200, 120])
    assert pts[0, EXT_INDEX["mid_hip"], :2] == pytest.approx([200, 410])
    assert LANDMARK_NAMES[0] == "nose"
