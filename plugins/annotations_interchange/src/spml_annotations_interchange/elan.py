"""ElanParser: ELAN ``.eaf`` files. Each tier's annotations are labels; times become frames by the keypoints' timestamps.

A tier named after a class column of ``label_class_mapping`` (e.g. ``step_type``) holds that class's
labels; any other tier's labels are classed by the mapping alone. Two annotations of one tier that
overlap are an error (a class has one label per frame).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from spml_core import VideoAnnotations
from spml_core.components import AnnotationParser
from spml_core.components import Options as BaseOptions
from spml_core.config import AnnotationSchema
from spml_core.errors import SpmlError
from spml_annotations_interchange.common import annotation, media_stem, read_xml


class ElanParser(AnnotationParser):
    """Reads one ELAN annotation document (.eaf) per video."""

    name: ClassVar[str] = "elan"
    description: ClassVar[str] = "ELAN .eaf: tiers -> classes, annotation values -> labels, times in ms"
    file_patterns: ClassVar[tuple[str, ...]] = ("*.eaf",)

    class Options(BaseOptions):
        """Options of the ELAN parser."""

        tiers: list[str] | None = Field(None, description="Read only these tiers (default: every tier)")

    def parse(self, path: Path, schema: AnnotationSchema) -> VideoAnnotations:
        """Parse one .eaf file; errors name the file, the tier and the annotation at fault."""
        path = Path(path)
        root = read_xml(path, "ANNOTATION_DOCUMENT", "an ELAN file")
        slots: dict[str, int | None] = {}
        for ts in root.iter("TIME_SLOT"):
            value = ts.get("TIME_VALUE")
            try:
                slots[ts.get("TIME_SLOT_ID", "")] = int(value) if value is not None else None
            except ValueError:
                raise SpmlError(f"{path}: TIME_SLOT {ts.get('TIME_SLOT_ID')}: TIME_VALUE {value!r} is not "
                                "a whole number of milliseconds") from None
        classes = set(schema.label_class_mapping.values())
        tiers = [t for t in root.iter("TIER") if self.options.tiers is None  # type: ignore[attr-defined]
                 or t.get("TIER_ID") in self.options.tiers]  # type: ignore[attr-defined]
        if self.options.tiers:  # type: ignore[attr-defined]
            missing = set(self.options.tiers) - {t.get("TIER_ID") for t in tiers}  # type: ignore[attr-defined]
            if missing:
                raise SpmlError(f"{path}: no tier {sorted(missing)[0]!r} (options.tiers); tiers are "
                                f"{[t.get('TIER_ID') for t in root.iter('TIER')]}")
        aligned: dict[str, tuple[int, int]] = {}
        for a in root.iter("ALIGNABLE_ANNOTATION"):
            aligned[a.get("ANNOTATION_ID", "")] = (self._time(path, slots, a, "TIME_SLOT_REF1"),
                                                   self._time(path, slots, a, "TIME_SLOT_REF2"))
        out = []
        for tier in tiers:
            tier_id = tier.get("TIER_ID", "")
            spans = []
            for ann in tier.iter("ANNOTATION"):
                inner = ann[0] if len(ann) else None
                if inner is None:
                    continue
                aid = inner.get("ANNOTATION_ID", "?")
                ref = inner.get("ANNOTATION_REF") if inner.tag == "REF_ANNOTATION" else aid
                if ref not in aligned:
                    raise SpmlError(f"{path}: tier {tier_id!r}, annotation {aid}: refers to annotation {ref}, "
                                    "which has no time slots")
                start, end = aligned[ref]
                value = (inner.findtext("ANNOTATION_VALUE") or "").strip()
                if not value:
                    continue  # an empty annotation labels nothing
                where = f"{path}: tier {tier_id!r}, annotation {aid} ({start}-{end} ms, {value!r})"
                if end < start:
                    raise SpmlError(f"{where}: ends before it starts")
                cls = schema.label_class_mapping.get(value)
                if tier_id in classes and cls is not None and cls != tier_id:
                    raise SpmlError(f"{where}: label_class_mapping puts {value!r} in class {cls!r}, "
                                    f"but the tier is class {tier_id!r}")
                spans.append((start, end, value, aid))
            spans.sort()
            for (s0, e0, v0, a0), (s1, e1, v1, a1) in zip(spans, spans[1:]):
                if s1 < e0:
                    raise SpmlError(f"{path}: tier {tier_id!r}: annotations {a0} ({s0}-{e0} ms, {v0!r}) and "
                                    f"{a1} ({s1}-{e1} ms, {v1!r}) overlap; a tier holds one label at a time")
            for start, end, value, aid in spans:
                out.append(annotation(schema, value, len(out), f"{path}: tier {tier_id!r}, annotation {aid}",
                                      start_time=start / 1000.0, end_time=end / 1000.0))
        media = root.find("HEADER/MEDIA_DESCRIPTOR")
        video = media_stem(media.get("MEDIA_URL") or media.get("RELATIVE_MEDIA_URL")) if media is not None else None
        return VideoAnnotations(file=path, video_name=video, annotations=out)

    @staticmethod
    def _time(path: Path, slots: dict[str, int | None], a: object, ref: str) -> int:
        slot = a.get(ref)  # type: ignore[attr-defined]
        if slot not in slots:
            raise SpmlError(f"{path}: annotation {a.get('ANNOTATION_ID')}: {ref} {slot!r} is no TIME_SLOT")  # type: ignore[attr-defined]
        t = slots[slot]
        if t is None:
            raise SpmlError(f"{path}: annotation {a.get('ANNOTATION_ID')}: time slot {slot} has no TIME_VALUE "  # type: ignore[attr-defined]
                            "(unaligned); align it in ELAN first")
        return t
