"""CsvImporter: a wide CSV of pose samples, one row per frame or image, read through a column map.

The documented layout (docs/interchange.md): ``image,class,x0,y0,z0,...,x32,y32,z32`` with BlazePose's
33 landmarks in pixels. Rows of one ``group_column`` value (default: the whole file) become one
sequence, in file order, at ``fps``. The frame size is given (``width``/``height``), read from the
first image named by ``name_column`` (looked up beside the CSV or in ``image_dir``), or inferred from
the coordinates' extent (recorded in the provenance as inferred).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from spml_core import LANDMARK_NAMES, N_LANDMARKS, PoseSequence, file_sha256
from spml_core.components import ImportedKeypoints, KeypointImporter
from spml_core.components import Options as BaseOptions
from spml_core.errors import SpmlError


class CsvImporter(KeypointImporter):
    """Wide CSV of landmarks (pixels or normalised) with optional name, label and group columns."""

    name: ClassVar[str] = "csv"
    description: ClassVar[str] = "wide CSV: a row per frame/image, 33 x (x, y[, z][, v]) columns via a column map"
    file_patterns: ClassVar[tuple[str, ...]] = ("*.csv",)

    class Options(BaseOptions):
        """The column map and units of the CSV importer."""

        name_column: str | None = Field("image", description="Column naming each row's image or frame (optional)")
        label_column: str | None = Field("class", description="Column with each row's label (null: unlabelled)")
        group_column: str | None = Field(None, description="Rows with one value form one sequence (default: file)")
        first_column: str | int | None = Field(
            None, description="First landmark column (name or 0-based index); default: the first column that is "
            "not the name, label or group column")
        template: str | None = Field(
            None, description="Landmark columns by name instead of position, e.g. '{landmark}_{channel}' "
            "({landmark}: nose, left_shoulder, ...; {index}: 0-32; {channel}: x, y, z, v)")
        channels: Literal["xy", "xyz", "xyzv"] = Field("xyz", description="Values per landmark, in column order")
        units: Literal["pixels", "normalized"] = Field("pixels", description="x/y in pixels or 0..1 of the frame")
        width: int | None = Field(None, gt=0, description="Frame width in pixels (default: from the images or inferred)")
        height: int | None = Field(None, gt=0, description="Frame height in pixels")
        image_dir: str | None = Field(None, description="Folder of the images named by name_column (default: the CSV's)")
        fps: float = Field(30.0, gt=0, description="Frame rate for timestamps (rows are frames at this rate)")
        delimiter: str = Field(",", min_length=1, max_length=1)

    def read(self, path: Path) -> list[ImportedKeypoints]:
        """One CSV file -> one sequence per group."""
        import pandas as pd

        path = Path(path)
        if path.is_dir():
            raise SpmlError(f"{path}: the csv importer reads one CSV file; give the file")
        o = self.options
        try:
            df = pd.read_csv(path, sep=o.delimiter, dtype=str, keep_default_na=False)  # type: ignore[attr-defined]
        except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise SpmlError(f"{path}: cannot read as CSV ({exc})") from None
        cols = list(df.columns)
        for key in ("name_column", "label_column", "group_column"):
            c = getattr(o, key)
            if c is not None and c not in cols:
                if key == "name_column" and c == "image":  # the default name column is optional
                    o = o.model_copy(update={"name_column": None})
                    continue
                if key == "label_column" and c == "class":
                    o = o.model_copy(update={"label_column": None})
                    continue
                raise SpmlError(f"{path}: no column {c!r} (option {key}); the columns are {cols[:8]}"
                                + (" ..." if len(cols) > 8 else ""))
        lm_cols = self._landmark_columns(path, cols, o)
        values = np.empty((len(df), len(lm_cols)), dtype=np.float64)
        for j, c in enumerate(lm_cols):
            num = pd.to_numeric(df[c].replace("", np.nan), errors="coerce")
            bad = num.isna() & (df[c] != "")
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise SpmlError(f"{path}: row {i + 2}, column {c!r}: {df[c].iloc[i]!r} is not a number")
            values[:, j] = num.to_numpy(dtype=np.float64)
        k = len(o.channels)  # type: ignore[attr-defined]
        xyzv = np.full((len(df), N_LANDMARKS, 4), np.nan, dtype=np.float64)
        xyzv[:, :, :k] = values.reshape(len(df), N_LANDMARKS, k)
        present = ~np.isnan(xyzv[:, :, :2]).any(axis=2)
        if "z" not in o.channels:  # type: ignore[attr-defined]
            xyzv[:, :, 2] = np.where(present, 0.0, np.nan)
        if "v" not in o.channels:  # type: ignore[attr-defined]
            xyzv[:, :, 3] = np.where(present, 1.0, np.nan)
        xyzv[~present] = np.nan
        width, height, size_from = self._frame_size(path, df, xyzv, o)
        if o.units == "pixels":  # type: ignore[attr-defined]
            xyzv[:, :, 0] /= width
            xyzv[:, :, 1] /= height
            xyzv[:, :, 2] /= width  # MediaPipe's z is on the scale of x
        groups = df[o.group_column].to_numpy() if o.group_column else np.full(len(df), path.stem, dtype=object)  # type: ignore[attr-defined]
        sha = file_sha256(path)
        out = []
        for g in dict.fromkeys(groups.tolist()):
            rows = np.flatnonzero(groups == g)
            n = len(rows)
            name = re.sub(r"[^\w.-]+", "_", str(g)).strip("._") or "sequence"
            prov = {"name": name, "format": self.name, "file": str(path), "sha256": sha, "rows": [int(rows[0]) + 2,
                    int(rows[-1]) + 2], "options": o.model_dump(mode="json"), "frame_size": size_from}
            if o.name_column:  # type: ignore[attr-defined]
                prov["first_name"] = str(df[o.name_column].iloc[rows[0]])  # type: ignore[attr-defined]
            seq = PoseSequence(xyzv=xyzv[rows].astype(np.float32), frame_index=np.arange(n),
                               timestamps_ms=np.arange(n) * (1000.0 / o.fps), fps=o.fps,  # type: ignore[attr-defined]
                               width=width, height=height, provenance=prov)
            labels = None
            if o.label_column:  # type: ignore[attr-defined]
                labels = [v.strip() or None for v in df[o.label_column].iloc[rows].tolist()]  # type: ignore[attr-defined]
            out.append(ImportedKeypoints(name, seq, labels, o.label_column))  # type: ignore[attr-defined]
        return out

    @staticmethod
    def _landmark_columns(path: Path, cols: list[str], o: Any) -> list[str]:
        k = len(o.channels)
        need = N_LANDMARKS * k
        if o.template:
            names = [o.template.format(landmark=lm, index=i, channel=ch)
                     for i, lm in enumerate(LANDMARK_NAMES) for ch in o.channels]
            missing = [c for c in names if c not in cols]
            if missing:
                raise SpmlError(f"{path}: {len(missing)} landmark columns of template {o.template!r} are missing, "
                                f"e.g. {missing[:3]}")
            return names
        if o.first_column is None:
            skip = {o.name_column, o.label_column, o.group_column}
            start = next((i for i, c in enumerate(cols) if c not in skip), len(cols))
        elif isinstance(o.first_column, int):
            start = o.first_column
        elif o.first_column in cols:
            start = cols.index(o.first_column)
        else:
            raise SpmlError(f"{path}: no column {o.first_column!r} (option first_column)")
        found = cols[start:start + need]
        if len(found) < need:
            raise SpmlError(f"{path}: expected {need} landmark columns ({N_LANDMARKS} x {','.join(o.channels)}) from "
                            f"column {start} ({cols[start] if start < len(cols) else 'past the end'!r}), found "
                            f"{len(found)}; set first_column, channels or template")
        extra = [c for c in found if c in {o.name_column, o.label_column, o.group_column}]
        if extra:
            raise SpmlError(f"{path}: column {extra[0]!r} falls among the landmark columns; set first_column")
        return found

    @staticmethod
    def _frame_size(path: Path, df: Any, xyzv: np.ndarray, o: Any) -> tuple[int, int, str]:
        if o.width and o.height:
            return o.width, o.height, "given"
        if o.width or o.height:
            raise SpmlError(f"{path}: give both width and height (got only {'width' if o.width else 'height'})")
        if o.units == "normalized":
            raise SpmlError(f"{path}: normalised coordinates need the frame size: set width and height")
        if o.name_column:
            folder = Path(o.image_dir) if o.image_dir else path.parent
            first = folder / str(df[o.name_column].iloc[0])
            if first.is_file():
                try:
                    import cv2
                except ImportError:  # OpenCV comes with spml-pose-mediapipe; without it, infer below
                    cv2 = None
                img = cv2.imread(str(first)) if cv2 is not None else None
                if img is not None:
                    return int(img.shape[1]), int(img.shape[0]), f"from image {first.name}"
        xs, ys = xyzv[:, :, 0], xyzv[:, :, 1]
        if np.isnan(xs).all():
            raise SpmlError(f"{path}: no landmark values to infer the frame size from; set width and height")
        w, h = int(math.ceil(np.nanmax(xs))), int(math.ceil(np.nanmax(ys)))
        return max(w, 1), max(h, 1), "inferred from the largest x and y"
