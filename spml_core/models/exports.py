"""Predicted bouts in the formats of the annotation tools researchers review them in (docs/interchange.md).

* ``elan``: an ELAN ``.eaf`` file, one tier named after the bundle's target, one annotation per bout
  (times in ms from the keypoint timestamps).
* ``labelstudio``: a Label Studio task list with the bouts as ``predictions`` of a ``TimelineLabels``
  control named ``label`` over a ``Video`` named ``video`` (frames 1-based, as Label Studio counts).
* ``dataloop``: one JSON file in Dataloop's layout (``name`` + ``annotations`` with
  ``metadata.system.frame``/``endFrame``), which spml's default ``json`` parser reads back.
* ``boris``: BORIS tabular events (TSV): a START and a STOP row per bout, times in seconds.

Every file is written atomically; the readers are the annotation parser plugins (spml-interchange).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

from spml_core.errors import SpmlError
from spml_core.util.atomic import write_text_atomic

if TYPE_CHECKING:
    import pandas as pd

EXPORT_SUFFIXES: dict[str, str] = {
    "elan": ".eaf",
    "labelstudio": ".labelstudio.json",
    "dataloop": ".dataloop.json",
    "boris": ".boris.tsv",
}
BORIS_COLUMNS = ["Observation id", "Media file name", "FPS", "Subject", "Behavior", "Behavior type", "Time",
                 "Image index"]


def check_export_formats(names: list[str]) -> list[str]:
    """The export formats asked for, checked; an unknown one names the valid ones."""
    bad = [n for n in names if n not in EXPORT_SUFFIXES]
    if bad:
        raise SpmlError(f"--export {bad[0]}: unknown export format; valid: {', '.join(EXPORT_SUFFIXES)}")
    return list(dict.fromkeys(names))


def _elan(bouts: pd.DataFrame, video: str, target: str, fps: float) -> str:
    slots: list[str] = []
    anns: list[str] = []
    for i, b in enumerate(bouts.itertuples(index=False)):
        # A bout ends at its last frame's time; ELAN needs end > start, so a one-frame bout gets
        # 1 ms, which still aligns to that frame alone when read back.
        start = int(round(b.start_ms))
        end = max(int(round(b.end_ms)), start + 1)
        slots += [f'    <TIME_SLOT TIME_SLOT_ID="ts{2 * i + 1}" TIME_VALUE="{start}"/>',
                  f'    <TIME_SLOT TIME_SLOT_ID="ts{2 * i + 2}" TIME_VALUE="{end}"/>']
        anns.append(
            f'    <ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a{i + 1}" TIME_SLOT_REF1="ts{2 * i + 1}" '
            f'TIME_SLOT_REF2="ts{2 * i + 2}"><ANNOTATION_VALUE>{escape(str(b._0))}</ANNOTATION_VALUE>'
            "</ALIGNABLE_ANNOTATION></ANNOTATION>"
        )
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<ANNOTATION_DOCUMENT AUTHOR="spml predict" DATE="1970-01-01T00:00:00+00:00" FORMAT="3.0" VERSION="3.0">',
        '  <HEADER MEDIA_FILE="" TIME_UNITS="milliseconds">',
        f'    <MEDIA_DESCRIPTOR MEDIA_URL={quoteattr(video)} RELATIVE_MEDIA_URL={quoteattr("./" + video)}/>',
        "  </HEADER>",
        "  <TIME_ORDER>", *slots, "  </TIME_ORDER>",
        f'  <TIER LINGUISTIC_TYPE_REF="default-lt" TIER_ID={quoteattr(target)}>', *anns, "  </TIER>",
        '  <LINGUISTIC_TYPE GRAPHIC_REFERENCES="false" LINGUISTIC_TYPE_ID="default-lt" TIME_ALIGNABLE="true"/>',
        "</ANNOTATION_DOCUMENT>", "",
    ])


def _labelstudio(bouts: pd.DataFrame, video: str, target: str, fps: float) -> str:
    result = [{
        "id": f"b{i + 1}", "type": "timelinelabels", "from_name": "label", "to_name": "video",
        "value": {"ranges": [{"start": int(b.start_frame) + 1, "end": int(b.end_frame) + 1}],
                  "timelinelabels": [str(b._0)]},
        "score": round(float(b.mean_probability), 4),
    } for i, b in enumerate(bouts.itertuples(index=False))]
    task = {"data": {"video": video}, "meta": {"target": target, "fps": fps},
            "predictions": [{"model_version": "spml predict", "result": result}]}
    return json.dumps([task], indent=2) + "\n"


def _dataloop(bouts: pd.DataFrame, video: str, target: str, fps: float) -> str:
    anns = [{"label": str(b._0), "metadata": {"system": {
        "frame": int(b.start_frame), "endFrame": int(b.end_frame),
        "startTime": float(b.start_ms) / 1000.0, "endTime": float(b.end_ms) / 1000.0}}}
        for b in bouts.itertuples(index=False)]
    return json.dumps({"name": video, "annotations": anns}, indent=2) + "\n"


def _boris(bouts: pd.DataFrame, video: str, target: str, fps: float) -> str:
    lines = ["\t".join(BORIS_COLUMNS)]
    obs = Path(video).stem
    for b in bouts.itertuples(index=False):
        for kind, t, frame in (("START", b.start_ms, b.start_frame), ("STOP", b.end_ms, b.end_frame)):
            lines.append("\t".join([obs, video, f"{fps:g}", "", str(b._0), kind, f"{t / 1000.0:.3f}", str(int(frame))]))
    return "\n".join(lines) + "\n"


WRITERS: dict[str, Callable[[pd.DataFrame, str, str, float], str]] = {
    "elan": _elan, "labelstudio": _labelstudio, "dataloop": _dataloop, "boris": _boris,
}


def export_bouts(bouts: pd.DataFrame, fmt: str, out: Path, video: str, target: str, fps: float) -> Path:
    """Write the bouts of one video in one tool's format to ``out`` (atomically)."""
    check_export_formats([fmt])
    return write_text_atomic(out, WRITERS[fmt](bouts, video, target, fps if fps > 0 else 30.0))
