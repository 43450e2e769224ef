"""What the parsers share: reading a file with clear errors, building Annotations, video names from paths."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from spml_core import Annotation
from spml_core.config import AnnotationSchema
from spml_core.errors import SpmlError


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """The file's text; a missing, unreadable or wrongly encoded file is one clear error naming it."""
    try:
        return Path(path).read_text(encoding=encoding)
    except FileNotFoundError:
        raise SpmlError(f"{path}: annotation file not found") from None
    except UnicodeDecodeError as exc:
        raise SpmlError(f"{path}: not {encoding} text (byte {exc.start}): {exc.reason}") from None
    except OSError as exc:
        raise SpmlError(f"{path}: cannot read annotation file ({exc.strerror})") from None


def read_xml(path: Path, root_tag: str, what: str) -> ElementTree.Element:
    """Parse an XML file whose root element must be ``root_tag``."""
    text = read_text(path)
    if "<!ENTITY" in text:  # entity expansion is how XML bombs work; annotation files never need it
        raise SpmlError(f"{path}: XML entity declarations are not accepted")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        line, col = exc.position
        raise SpmlError(f"{path}: invalid XML at line {line}, column {col}") from None
    if root.tag != root_tag:
        raise SpmlError(f"{path}: not {what} (root element <{root.tag}>, expected <{root_tag}>)")
    return root


def media_stem(name: str | None) -> str | None:
    """'file:///data/clip.mp4' or 'C:\\\\videos\\\\clip.mp4' -> 'clip.mp4' (the name, extension kept)."""
    if not name or not str(name).strip():
        return None
    return Path(str(name).replace("\\", "/").split("?")[0]).name or None


def annotation(schema: AnnotationSchema, label: str, index: int, where: str, **bounds: Any) -> Annotation:
    """An Annotation with its class from label_class_mapping (None: an unknown label, reported later)."""
    try:
        return Annotation(label=label, cls=schema.label_class_mapping.get(label), index=index, **bounds)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        msg = re.sub(r"\s+", " ", str(exc).split("\n", 1)[-1]).strip()
        raise SpmlError(f"{where}: {msg}") from None
