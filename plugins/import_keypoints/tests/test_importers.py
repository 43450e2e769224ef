"""The csv and openpose keypoint importers on small files written here: column maps, units, frame sizes,
grouping, labels, and one clear message per bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spml_core.errors import ConfigError, SpmlError
from spml_core.registry import Registry

LANDMARKS = ["nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
             "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
             "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
             "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
             "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index"]


@pytest.fixture(scope="module")
def registry():
    return Registry().load()


def _csv(path: Path, rows: int = 4, header_extra: str = "", channels: str = "xyz", group: bool = False) -> Path:
    names = ["image", "class"] + (["subject"] if group else []) + [f"{c}{j}" for j in range(33) for c in channels]
    lines = [",".join(names)]
    for i in range(rows):
        vals = [f"img{i}.png", "walk" if i < rows // 2 else ""] + (["a" if i % 2 else "b"] if group else [])
        for j in range(33):
            vals += [str(100 + j), str(50 + i), "10", "0.9"][: len(channels)]
        lines.append(",".join(vals))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_pixels_labels_and_groups(tmp_path, registry) -> None:
    imp = registry.create("keypoint_importer", "csv", {"width": 200, "height": 100})
    [item] = imp.read(_csv(tmp_path / "poses.csv"))
    seq = item.sequence
    assert item.name == "poses" and item.target == "class" and item.labels == ["walk", "walk", None, None]
    assert (seq.width, seq.height, seq.n_frames) == (200, 100, 4)
    np.testing.assert_allclose(seq.xyzv[1, 3], [103 / 200, 51 / 100, 10 / 200, 1.0], rtol=1e-6)
    np.testing.assert_allclose(seq.timestamps_ms, [0, 1000 / 30, 2000 / 30, 100])
    groups = registry.create("keypoint_importer", "csv", {"width": 200, "height": 100, "group_column": "subject",
                                                          "channels": "xyzv"})
    a, b = groups.read(_csv(tmp_path / "g.csv", rows=6, channels="xyzv", group=True))
    assert (a.name, a.sequence.n_frames, b.name) == ("b", 3, "a")
    assert a.sequence.xyzv[0, 0, 3] == pytest.approx(0.9)


def test_csv_template_and_inferred_size(tmp_path, registry) -> None:
    names = ["frame"] + [f"{lm}_{c}" for lm in LANDMARKS for c in "xy"]
    row = ["0"] + [f"{10 * j + 5}" if c == "x" else "40" for j in range(33) for c in "xy"]
    path = tmp_path / "named.csv"
    path.write_text(",".join(names) + "\n" + ",".join(row) + "\n")
    imp = registry.create("keypoint_importer", "csv", {"template": "{landmark}_{channel}", "channels": "xy",
                                                       "name_column": "frame", "label_column": None})
    [item] = imp.read(path)
    assert (item.sequence.width, item.sequence.height) == (325, 40)
    assert item.sequence.provenance["frame_size"] == "inferred from the largest x and y" and item.labels is None


def test_csv_bad_inputs(tmp_path, registry) -> None:
    imp = registry.create("keypoint_importer", "csv", {"width": 200, "height": 100})
    short = tmp_path / "short.csv"
    short.write_text("image,class,x0,y0\nimg.png,walk,1,2\n")
    with pytest.raises(SpmlError, match=r"short.csv: expected 99 landmark columns \(33 x x,y,z\) from column 2 "
                                        r"\('x0'\), found 2"):
        imp.read(short)
    bad = _csv(tmp_path / "bad.csv")
    bad.write_text(bad.read_text().replace("img2.png,,100", "img2.png,,abc"))
    with pytest.raises(SpmlError, match=r"bad.csv: row 4, column 'x0': 'abc' is not a number"):
        imp.read(bad)
    with pytest.raises(SpmlError, match=r"no column 'who' \(option group_column\)"):
        registry.create("keypoint_importer", "csv", {"group_column": "who"}).read(_csv(tmp_path / "x.csv"))
    with pytest.raises(SpmlError, match="template '{landmark}-{channel}' are missing"):
        registry.create("keypoint_importer", "csv", {"template": "{landmark}-{channel}"}).read(_csv(tmp_path / "x.csv"))
    with pytest.raises(SpmlError, match="normalised coordinates need the frame size"):
        registry.create("keypoint_importer", "csv", {"units": "normalized"}).read(_csv(tmp_path / "x.csv"))
    with pytest.raises(ConfigError, match="channels"):
        registry.build("keypoint_importer", "csv", {"channels": "xzy"})


def test_spml_import_writes_nothing_on_bad_input(tmp_path) -> None:
    from spml_core.cli.main import main

    bad = _csv(tmp_path / "bad.csv")
    bad.write_text(bad.read_text().replace("img3.png,,100", "img3.png,,oops"))
    assert main(["import", "csv", str(bad), "--out", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out").exists()


def _openpose(folder: Path, video: str, frame: int, people: list) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{video}_{frame:012d}_keypoints.json").write_text(json.dumps(
        {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": p} for p in people]}))


def test_openpose_body25(tmp_path, registry) -> None:
    weak = [0.0] * 75
    strong = []
    for j in range(25):
        strong += [10.0 * j + 10, 5.0 * j + 5, 0.0 if j == 1 else 0.8]
    for f in range(3):
        _openpose(tmp_path / "op", "clipA", f, [weak, strong] if f != 1 else [])
    _openpose(tmp_path / "op", "clipB", 0, [strong])
    imp = registry.create("keypoint_importer", "openpose", {"width": 300, "height": 200, "fps": 25})
    a, b = imp.read(tmp_path / "op")
    assert (a.name, a.sequence.n_frames, b.name) == ("clipA", 3, "clipB")
    seq = a.sequence
    assert np.isnan(seq.xyzv[1]).all()  # nobody in frame 1
    nose, rs, lfi = LANDMARKS.index("nose"), LANDMARKS.index("right_shoulder"), LANDMARKS.index("left_foot_index")
    np.testing.assert_allclose(seq.xyzv[0, nose], [10 / 300, 5 / 200, 0.0, 0.8], rtol=1e-6)
    np.testing.assert_allclose(seq.xyzv[0, rs, :2], [30 / 300, 15 / 200], rtol=1e-6)
    np.testing.assert_allclose(seq.xyzv[2, lfi, :2], [200 / 300, 100 / 200], rtol=1e-6)
    assert np.isnan(seq.xyzv[0, LANDMARKS.index("left_thumb")]).all()
    np.testing.assert_allclose(seq.timestamps_ms, [0, 40, 80])
    (tmp_path / "op" / "clipB_000000000001_keypoints.json").write_text('{"people": [{"pose_keypoints_2d": [1, 2]}]}')
    with pytest.raises(SpmlError, match=r"clipB_000000000001_keypoints.json: people\[0\].pose_keypoints_2d must hold "
                                        r"75 numbers .* got 2"):
        imp.read(tmp_path / "op")
