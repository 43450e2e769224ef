"""Every segmentation strategy on the real example (MediaPipe keypoints + example_video.json), against counts
and labels worked out by hand from the annotation ranges; plus the CLI, `spml run` and the seed API.

The annotations (example_video.json), as inclusive ranges of 0-based video frames (the video has 382, 0-381):

    frames    step_type    weight_transfer_type
    7-49      Right Step   Successful Weight Transfer        43 frames
    51-96     Left Step    Failure Weight Transfer           46
    98-127    Right Step   Successful Weight Transfer        30
    128-159   Left Step    Successful Weight Transfer        32
    161-192   Right Step   Successful Weight Transfer        32
    194-237   Left Step    Successful Weight Transfer        44

so 227 frames carry both labels and 155 (0-6, 50, 97, 160, 193, 238-381) none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spml_core.errors import SpmlError
from spml_core.features.spec import FeaturePipelineSpec
from spml_core.features.offline import format_dataset_frames
from spml_core.keypoints.skeleton import landmark_columns

pytestmark = pytest.mark.slow  # the session's MediaPipe extraction of the example video

RS, LS = "Right Step", "Left Step"
SWT, FWT = "Successful Weight Transfer", "Failure Weight Transfer"
FEATURES = ["angles", "distances", "normalized"]
PER_FRAME = 35 + 23 + 66


@pytest.fixture(scope="module")
def frames(example_keypoints_dir: Path, example_annotations: Path) -> pd.DataFrame:
    """The per-frame table `spml dataset` builds from the example."""
    from spml_core.datasets.build import build_dataset

    df, _ = build_dataset(example_keypoints_dir, example_annotations.parent)
    return df


def fmt(frames: pd.DataFrame, strategy: str, features=FEATURES, **options):
    return format_dataset_frames(frames, FeaturePipelineSpec.from_options(features, None, strategy, options))


def test_the_table_matches_the_annotation_ranges(frames):
    assert len(frames) == 382
    assert frames["step_type"].notna().sum() == 227 and frames["weight_transfer_type"].notna().sum() == 227
    assert frames.loc[[6, 50, 97, 160, 193, 238], "step_type"].isna().all()
    assert frames.loc[[7, 49, 98, 127, 161, 192], "step_type"].tolist() == [RS] * 6


# -- none --------------------------------------------------------------------------------------------------
def test_none_gives_a_row_per_frame(frames):
    r = fmt(frames, "none")
    assert r.frame.shape == (382, 5 + PER_FRAME)  # video, frame, timestamp_ms, 2 classes, features
    assert r.frame["frame"].tolist() == list(range(382))
    assert r.frame["step_type"].notna().sum() == 227
    labelled = fmt(frames, "none", include_unlabeled_data=False)
    assert len(labelled.frame) == 227  # StreamPoseML's 227 labelled frames
    assert labelled.notes == ["left out 155 of 382 frames without a label in every class"]


def test_none_pooled_summarises_single_frames(frames):
    # StreamPoseML's default (pool_frame_data_by_clip=True with strategy none): one-frame "clips".
    r = fmt(frames, "none", pool=True)
    cols = r.spec.columns
    assert len(r.frame) == 382 and len(cols) == 3 * PER_FRAME
    values = r.frame[cols].to_numpy()
    plain = fmt(frames, "none").frame[r.spec.frame_columns].to_numpy()
    np.testing.assert_array_equal(values[:, :PER_FRAME], plain)               # mean of one frame = the frame
    np.testing.assert_array_equal(values[:, PER_FRAME:2 * PER_FRAME], plain)  # max likewise (not floored at 0)
    assert np.nanmax(np.abs(values[:, 2 * PER_FRAME:])) == 0                  # std of one value


# -- split_on_label ---------------------------------------------------------------------------------------
def test_split_on_label_by_step_type(frames):
    # Six runs of step_type, each exactly one annotation: the gaps at 50, 97, 160 and 193 separate them, and
    # 127 (Right) / 128 (Left) differ. Unpooled: a row per frame of each run, 43+46+30+32+32+44 = 227 rows.
    r = fmt(frames, "split_on_label", segmentation_splitter_label="step_type")
    assert len(r.frame) == 227
    assert r.frame.groupby("example")["frame"].agg(["min", "max"]).values.tolist() == [
        [7, 49], [51, 96], [98, 127], [128, 159], [161, 192], [194, 237]]
    pooled = fmt(frames, "split_on_label", segmentation_splitter_label="step_type", pool="mean,max,std").frame
    assert pooled["n_frames"].tolist() == [43, 46, 30, 32, 32, 44]
    assert pooled["step_type"].tolist() == [RS, LS, RS, LS, RS, LS]
    assert pooled["weight_transfer_type"].tolist() == [SWT, FWT, SWT, SWT, SWT, SWT]


def test_split_on_label_by_weight_transfer(frames):
    # Successful 98-127 and 128-159 touch (no unlabelled frame between): one run 98-159 of 62 frames.
    # StreamPoseML merged 98-237 across the gaps at 160 and 193 (B8) and moved run ends (B7): 4 examples.
    r = fmt(frames, "split_on_label", segmentation_splitter_label="weight_transfer_type", pool="mean")
    f = r.frame
    assert list(zip(f["start_frame"], f["end_frame"])) == [(7, 49), (51, 96), (98, 159), (161, 192), (194, 237)]
    # step_type by the last frame: 49 R, 96 L, 159 L, 192 R, 237 L
    assert f["step_type"].tolist() == [RS, LS, LS, RS, LS]
    assert f["weight_transfer_type"].tolist() == [SWT, FWT, SWT, SWT, SWT]
    # By majority, 98-159 holds 30 Right and 32 Left frames: Left as well.
    maj = fmt(frames, "split_on_label", segmentation_splitter_label="weight_transfer_type", pool="mean",
              label_rule="majority").frame
    assert maj["step_type"].tolist() == [RS, LS, LS, RS, LS]
    # With a window of 20, each example keeps its last 20 frames.
    cut = fmt(frames, "split_on_label", segmentation_splitter_label="weight_transfer_type", segmentation_window=20,
              pool="mean").frame
    assert cut["start_frame"].tolist() == [30, 77, 140, 173, 218] and set(cut["n_frames"]) == {20}


# -- window / flatten_into_columns --------------------------------------------------------------------------
# Windows of 10 from frame 0: [0-9], [10-19], ..., [370-379] (38; frames 380-381 fill no window). Labelled by
# their last frame 9, 19, ..., 379: ends 9-49 in 7-49 (5), 59-89 in 51-96 (4), 99-119 in 98-127 (3),
# 129-159 in 128-159 (4), 169-189 in 161-192 (3), 199-229 in 194-237 (4): 23 windows, 15 left out.
END10 = [9, 19, 29, 39, 49, 59, 69, 79, 89, 99, 109, 119, 129, 139, 149, 159, 169, 179, 189, 199, 209, 219, 229]
STEP10 = [RS] * 5 + [LS] * 4 + [RS] * 3 + [LS] * 4 + [RS] * 3 + [LS] * 4
WEIGHT10 = [SWT] * 5 + [FWT] * 4 + [SWT] * 14


def test_window_strategy(frames):
    r = fmt(frames, "window", segmentation_window=10, segmentation_window_label="weight_transfer_type")
    assert len(r.frame) == 230  # a row per frame of each of the 23 windows
    assert r.notes == ["left out 15 of 38 windows without a weight_transfer_type label on their last frame"]
    pooled = fmt(frames, "window", segmentation_window=10, segmentation_window_label="weight_transfer_type",
                 pool=True).frame
    assert pooled["end_frame"].tolist() == END10
    assert pooled["step_type"].tolist() == STEP10 and pooled["weight_transfer_type"].tolist() == WEIGHT10
    assert pooled.shape[1] == 7 + 3 * PER_FRAME


def test_window_majority_label_and_stride(frames):
    # Window [90-99]: frames 90-96 Failure (7), 97 unlabelled, 98-99 Successful (2). Last frame: Successful;
    # majority: Failure. Window [50-59]: 50 unlabelled, 51-59 Failure under both rules.
    last = fmt(frames, "window", segmentation_window=10, segmentation_window_label="weight_transfer_type",
               pool="mean").frame.set_index("start_frame")["weight_transfer_type"]
    maj = fmt(frames, "window", segmentation_window=10, segmentation_window_label="weight_transfer_type",
              pool="mean", label_rule="majority").frame.set_index("start_frame")["weight_transfer_type"]
    assert (last[90], maj[90]) == (SWT, FWT) and last[50] == maj[50] == FWT
    # Majority keeps every window holding any labelled frame: [0-9] (7-9) ... [230-239] (230-237): 24 windows.
    assert len(maj) == 24 and maj.index[0] == 0 and maj.index[-1] == 230
    # Stride 5: windows start 0, 5, ..., 370 (75) and end on 9, 14, ..., 379. Labelled ends: 9-49 (9),
    # 54-94 (9), 99-159 (13), 164-189 (6), 194-234 (9) = 46.
    s5 = fmt(frames, "window", segmentation_window=10, segmentation_window_label="weight_transfer_type", stride=5,
             pool="mean").frame
    assert len(s5) == 46 and s5["start_frame"].iloc[:3].tolist() == [0, 5, 10]


def test_flatten_into_columns(frames):
    r = fmt(frames, "flatten_into_columns", segmentation_window=10, segmentation_window_label="weight_transfer_type")
    f = r.frame
    assert f.shape == (23, 7 + 10 * PER_FRAME)  # StreamPoseML: 23 x 815, with its broken features
    assert f["end_frame"].tolist() == END10 and f["start_frame"].tolist() == [e - 9 for e in END10]
    assert f["step_type"].tolist() == STEP10 and f["weight_transfer_type"].tolist() == WEIGHT10
    assert r.spec.columns[:2] == ["frame-1-nose_neck_to_plumb_line_angle_2d_degrees",
                                  "frame-1-neck_left_shoulder_to_plumb_line_angle_2d_degrees"]
    assert r.spec.columns[-1] == "frame-10-right_foot_index_y_normalized"
    # frame-k of window i is the per-frame row of frame start_i + k - 1.
    per_frame = fmt(frames, "none").frame.set_index("frame")[r.spec.frame_columns]
    row = f.iloc[9]
    for k in (1, 10):
        got = row[[f"frame-{k}-{c}" for c in r.spec.frame_columns]].to_numpy(np.float32)
        np.testing.assert_array_equal(got, per_frame.loc[row["start_frame"] + k - 1].to_numpy(np.float32))


def test_flatten_on_example(frames):
    # The last 10 frames of each of the six step_type examples (ends 49, 96, 127, 159, 192, 237).
    r = fmt(frames, "flatten_on_example", segmentation_splitter_label="step_type", segmentation_window=10)
    assert r.frame["start_frame"].tolist() == [40, 87, 118, 150, 183, 228]
    assert r.frame["step_type"].tolist() == [RS, LS, RS, LS, RS, LS]
    assert r.frame.shape[1] == 7 + 10 * PER_FRAME
    # With 35 frames, the 30- and 32-frame examples are too short: 3 rows (43, 46 and 44 frames long).
    r35 = fmt(frames, "flatten_on_example", segmentation_splitter_label="step_type", segmentation_window=35)
    assert r35.frame["end_frame"].tolist() == [49, 96, 237]
    assert r35.notes == ["left out 3 of 6 examples shorter than segmentation_window=35 frames (shortest: 30)"]
    with pytest.raises(SpmlError, match="segmentation_window=50 is longer than every step_type example"):
        fmt(frames, "flatten_on_example", segmentation_splitter_label="step_type", segmentation_window=50)


def test_windows_without_a_person_are_dropped_and_counted(frames):
    blank = frames.copy()
    blank.loc[0:19, landmark_columns()] = np.nan  # as if nobody were in frames 0-19
    r = fmt(blank, "flatten_into_columns", segmentation_window=10, segmentation_window_label="weight_transfer_type")
    assert r.frame["end_frame"].tolist() == END10[2:]
    assert r.notes[-1] == "dropped 2 of 23 examples whose frames had no person detected (all features NaN)"


def test_live_buffer_reproduces_the_example_rows(frames):
    r = fmt(frames, "flatten_into_columns", features=FEATURES + ["velocities"], segmentation_window=10,
            segmentation_window_label="weight_transfer_type")
    xyzv = frames[landmark_columns()].to_numpy().reshape(-1, 33, 4)
    buf = r.spec.live_buffer(1280, 720)
    rows = {i: row for i in range(230) if (row := buf.push(xyzv[i])) is not None}
    batch = r.frame[r.spec.columns].to_numpy()
    for k, end in enumerate(r.frame["end_frame"]):
        assert rows[end].tobytes() == batch[k].tobytes()


# -- command line, config and seed API ------------------------------------------------------------------------
def test_cli_formats_the_dataset_and_fails_without_writing(example_keypoints_dir, example_annotations, tmp_path,
                                                           capsys):
    from spml_core.cli.main import main
    from spml_core.features.spec import read_feature_spec

    out = tmp_path / "ds" / "windows.csv"
    base = ["dataset", "--keypoints", str(example_keypoints_dir), "--annotations", str(example_annotations.parent),
            "--out", str(out), "-q"]
    assert main([*base, "--strategy", "flatten_into_columns", "--window", "10", "--window-label",
                 "weight_transfer_type", "--features", "angles,distances", "--decimals", "2"]) == 0
    df = pd.read_csv(out)
    assert df.shape == (23, 7 + 10 * 58)
    assert (df["frame-1-nose_to_plumb_line_distance_2d_normalized"].round(2) ==
            df["frame-1-nose_to_plumb_line_distance_2d_normalized"]).all()
    spec = read_feature_spec(out)
    assert spec is not None and spec.columns == list(df.columns[7:]) and spec.decimals == 2
    before = out.read_bytes()
    # Errors: a class that does not exist, an unknown strategy; the earlier file is left as it was.
    assert main([*base, "--strategy", "split_on_label", "--splitter-label", "steps"]) == 1
    assert "segmentation_splitter_label 'steps' is not a class of this dataset; classes: step_type, " \
           "weight_transfer_type" in capsys.readouterr().err
    assert main([*base, "--strategy", "sliding"]) == 1
    assert "unknown segmenter 'sliding'. Available: flatten_into_columns" in capsys.readouterr().err
    assert main([*base, "--strategy", "window", "--window", "500", "--window-label", "step_type"]) == 1
    assert "segmentation_window=500 is longer than every video" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["windows.csv", "windows.csv.report.json",
                                                            "windows.csv.spec.json"]


def test_spml_run_config_produces_the_formatted_dataset(example_keypoints_dir, example_annotations, tmp_path):
    from spml_core.pipeline import run_config

    cfg = tmp_path / "config.yml"
    cfg.write_text(
        "pipeline:\n"
        "  dataset:\n"
        f"    keypoints: {example_keypoints_dir}\n"
        f"    annotations: {example_annotations.parent}\n"
        "    out: data/pooled.parquet\n"
        "    features: [angles, velocities]\n"
        "    feature_options: {velocities: {of: {angles: {}}}}\n"
        "    segmentation:\n"
        "      use: window\n"
        "      options: {segmentation_window: 10, segmentation_window_label: weight_transfer_type, pool: [max]}\n"
        "    decimals: 3\n"
    )
    run_config(cfg)
    df = pd.read_parquet(tmp_path / "data" / "pooled.parquet")
    assert len(df) == 23 and df.columns[7] == "max-nose_neck_to_plumb_line_angle_2d_degrees"
    assert df.shape[1] == 7 + 70


def test_seed_api_format_dataset_and_write_dataset_to_csv(example_keypoints_dir, example_annotations, tmp_path):
    import stream_pose_ml.jobs.build_and_format_dataset_job as data_builder

    db = data_builder.BuildAndFormatDatasetJob()
    dataset = db.build_dataset_from_data_files(
        annotations_data_directory=str(example_annotations.parent),
        sequence_data_directory=str(example_keypoints_dir), limit=None)
    formatted = db.format_dataset(
        dataset=dataset, pool_frame_data_by_clip=False, decimal_precision=4, include_unlabeled_data=True,
        include_angles=True, include_distances=True, include_normalized=True,
        segmentation_strategy="flatten_into_columns", segmentation_splitter_label="step_type",
        segmentation_window=10, segmentation_window_label="weight_transfer_type")
    assert isinstance(formatted, list) and len(formatted) == 23  # StreamPoseML's list of row dicts
    assert [row["weight_transfer_type"] for row in formatted] == WEIGHT10
    assert formatted.frame.shape == (23, 7 + 10 * PER_FRAME)
    path = db.write_dataset_to_csv(csv_location=str(tmp_path / "new" / "dir"), formatted_dataset=formatted,
                                   filename="preprocessed_flatten_on_example_10_frames_5.csv")
    assert path == tmp_path / "new" / "dir" / "preprocessed_flatten_on_example_10_frames_5.csv"  # no .csv.csv
    back = pd.read_csv(path)
    assert back.shape == formatted.frame.shape and list(back.columns) == list(formatted.frame.columns)
    # The README's "simplest approach": every include_* off, strategy none -> x, y, z per joint, a row per frame.
    raw = db.format_dataset(dataset=dataset, pool_frame_data_by_clip=False, decimal_precision=4,
                            include_unlabeled_data=True, include_angles=False, include_distances=False,
                            include_normalized=False, segmentation_strategy="none")
    assert raw.frame.shape == (382, 5 + 99) and "nose_z" in raw[0]
    # Pooled windows with real std; decimal_precision is honoured (StreamPoseML always rounded to 4).
    pooled = db.format_dataset(dataset=dataset, pool_frame_data_by_clip=True, decimal_precision=1,
                               segmentation_strategy="window", segmentation_window=10,
                               segmentation_window_label="weight_transfer_type")
    assert len(pooled) == 23
    vals = pooled.frame.filter(like="std-").to_numpy()
    assert (np.round(vals, 1) == vals).all() and (vals >= 0).all()
    with pytest.raises(SpmlError, match="cannot pool|pooling does not apply"):
        db.format_dataset(dataset=dataset, pool_frame_data_by_clip=True, segmentation_strategy="flatten_into_columns",
                          segmentation_window=10, segmentation_window_label="weight_transfer_type")
    # StreamPoseML's defaults: no segmentation, pooled, labelled frames only; a missing window/label raises.
    default = db.format_dataset(dataset)
    assert len(default) == 227 and "mean-nose_neck_to_plumb_line_angle_2d_degrees" in default[0]
    assert len(db.format_dataset(dataset, segmentation_strategy="split_on_label",
                                 segmentation_splitter_label="step_type", pool_frame_data_by_clip=False)) == 227
    with pytest.raises(SpmlError, match="needs segmentation_window"):
        db.format_dataset(dataset, segmentation_strategy="flatten_into_columns")
    with pytest.raises(SpmlError, match="needs segmentation_splitter_label"):
        db.format_dataset(dataset, segmentation_strategy="split_on_label")
