"""Base classes for the components plugins contribute, one per kind.

A component class sets ``name`` (what config.yml writes under ``use:``) and a nested pydantic
``Options`` model (validated options, ``extra="forbid"`` so typos are errors). Constructors
store options and do no heavy work, so the registry can list components without importing
mediapipe, torch or xgboost: those imports belong inside methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from spml_core.payloads import encode_payload

if TYPE_CHECKING:
    import numpy as np

    from spml_core.keypoints.sequence import PoseSequence


class Strict(BaseModel):
    """Config section: unknown keys are errors (typos must not pass silently)."""

    model_config = ConfigDict(extra="forbid")


class ComponentRef(Strict):
    """Selects an installed component by name, with options validated by that component."""

    use: str = Field(description="Component name, as listed by `spml plugins`")
    options: dict[str, Any] = Field(default_factory=dict)


class Options(BaseModel):
    """Base for component options: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class Component(ABC):
    """Base of every pluggable component."""

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options

    def __init__(self, options: Options | Mapping[str, Any] | None = None) -> None:
        if isinstance(options, BaseModel):
            options = options.model_dump()
        self.options = self.Options.model_validate(dict(options or {}))


class PoseEstimator(Component):
    """Turns video frames into BlazePose-layout landmarks.

    ``process_frame`` is the live path (web app, images); ``estimate_video`` the batch path.
    Instances hold tracking state: use one per video or stream and ``close()`` it.
    """

    kind = "pose_estimator"

    @abstractmethod
    def version(self) -> str:
        """Version string recorded in keypoint files (library and model)."""

    @abstractmethod
    def process_frame(self, rgb: np.ndarray, timestamp_ms: float) -> tuple[np.ndarray, np.ndarray | None]:
        """Estimate one RGB frame: (33, 4) x/y/z/visibility and optional (33, 3) world, NaN if no person."""

    @abstractmethod
    def estimate_video(
        self, path: Path, progress: Callable[[int], None] | None = None
    ) -> PoseSequence:
        """Estimate every frame of a video file; progress(n) is called with frames done since last call."""

    @classmethod
    def browser_models(cls) -> dict[str, Path]:
        """Model files the web page's in-browser pose can load, by model name (default: none).

        The web app serves these to the page, so it never imports an estimator plugin directly.
        """
        return {}

    def close(self) -> None:
        """Release native resources (models, decoders)."""

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AnnotationParser(Component):
    """Reads one annotation file per video into labelled frame ranges."""

    kind = "annotation_parser"
    # Glob patterns of the files this parser reads; `spml dataset` discovers annotation files with them.
    file_patterns: ClassVar[tuple[str, ...]] = ("*.json",)

    @abstractmethod
    def parse(self, path: Path, schema: Any) -> Any:
        """Parse one annotation file with the given annotation schema."""


class FeatureExtractor(Component):
    """Computes per-frame feature columns from (frames, 33, 4) keypoints, vectorised."""

    kind = "feature_extractor"

    @abstractmethod
    def columns(self) -> list[str]:
        """Names of the columns this extractor produces, in order."""

    @abstractmethod
    def transform(self, xyzv: np.ndarray, width: int, height: int) -> np.ndarray:
        """Return a (frames, len(columns())) float array; NaN rows where no person."""


class Segmenter(Component):
    """Turns a per-frame table into training examples (rows or windows)."""

    kind = "segmenter"

    @abstractmethod
    def segment(self, frames: Any, **kwargs: Any) -> Any:
        """Segment a per-frame table (a pandas DataFrame) into examples."""


class Model(Component):
    """Classifier with the scikit-learn contract; fitted attributes end with an underscore.

    ``input_rank`` says what X looks like: 2 for rows of features (n, features), 3 for
    sequences (n, frames, features_per_frame). Labels are strings; ``classes_`` is sorted.
    """

    kind = "model"
    input_rank: ClassVar[int] = 2
    # Small grid `spml train --search` tries (option name -> candidate values), by grouped CV.
    search_space: ClassVar[dict[str, list[Any]]] = {}
    classes_: list[str]
    # Training code turns progress bars off (e.g. inside cross-validation folds or tests).
    show_progress: bool = True

    def training_summary(self) -> dict[str, Any]:
        """JSON-able facts about the last fit (e.g. best iteration, epochs run), stored in the manifest."""
        return {}

    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> Model:
        """Fit on features X and labels y; groups (e.g. video) keep validation splits honest."""

    @abstractmethod
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, columns in the order of classes_."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable class label per row."""
        import numpy as np

        return np.asarray(self.classes_, dtype=object)[self.predict_proba(X).argmax(axis=1)]

    @abstractmethod
    def save(self, directory: Path) -> list[str]:
        """Write weights in the library's own safe format; return the file names written."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, options: Mapping[str, Any], classes: list[str]) -> Model:
        """Load weights written by save(); never unpickles."""


@dataclass(frozen=True)
class ActuatorStatus:
    """What an actuator reports: ``state`` is idle, connecting, connected, disconnected or error."""

    state: str
    message: str = ""


class Actuator(Component):
    """Receives decisions (not raw predictions) and acts on a device or service.

    An :class:`spml_core.actuation.runner.ActuatorRunner` calls ``open``, ``send`` and ``close`` on its
    own thread, never on the classification loop, so these may block. ``send`` raises on
    failure (the runner logs it); ``status`` must be cheap and thread-safe.
    """

    kind = "actuator"

    def encode(self, value: Any, label: str) -> bytes:
        """Encode a payload value from config.yml (bytes by default); raises PayloadError."""

        if isinstance(value, str):
            return encode_payload(value, "utf-8")
        return encode_payload(value, "bytes")

    def open(self) -> None:
        """Connect to the device; may block; a failure is reported by status() and retried by send()."""

    @abstractmethod
    def send(self, payload: bytes, decision: Any) -> None:
        """Deliver one action's payload to the device; raise with a clear message on failure."""

    def status(self) -> ActuatorStatus:
        """Current connection state and a human-readable message."""
        return ActuatorStatus("connected")

    def close(self) -> None:
        """Disconnect and release the device."""


class Executor(Component):
    """Runs a function over many independent items (videos), in processes or on a cluster."""

    kind = "executor"

    @abstractmethod
    def map_unordered(
        self, fn: Callable[..., Any], items: list[Any], on_progress: Callable[[int], None] | None = None
    ) -> Any:
        """Yield (item, result or exception) as each item finishes.

        ``fn(item, progress)`` runs in a worker; ``progress(n)`` there (or None when
        ``on_progress`` is None) reaches ``on_progress(n)`` in the calling process, so one
        progress bar can follow every worker. An exception raised by ``fn`` is yielded as the
        item's result, never raised, so one failing item does not stop the others.
        """


@dataclass
class ImportedKeypoints:
    """One sequence read by a keypoint importer: its keypoints, and per-frame labels when the source has them."""

    name: str
    sequence: PoseSequence
    labels: list[str | None] | None = None
    target: str | None = None  # the class column the labels belong to (e.g. the CSV's label column)


class KeypointImporter(Component):
    """Reads keypoints made elsewhere (a CSV, OpenPose JSON, StreamPoseML sequences) as PoseSequences.

    ``read`` returns every sequence of one input (a file or folder) in BlazePose's 33-landmark layout,
    normalised to the frame size; it raises SpmlError naming the file, row or column at fault.
    """

    kind = "keypoint_importer"
    file_patterns: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def read(self, path: Path) -> list[ImportedKeypoints]:
        """The sequences of one input file or folder."""


KINDS: dict[str, type[Component]] = {
    cls.kind: cls
    for cls in (PoseEstimator, AnnotationParser, FeatureExtractor, Segmenter, Model, Actuator, Executor,
                KeypointImporter)
}


class CliCommand(ABC):
    """A subcommand a plugin adds to `spml` (hook ``spml_cli_commands``), like spml-web's `spml serve`.

    Instantiated with no arguments when `spml` builds its parser, so keep the module and the constructor
    cheap: import heavy libraries inside ``run``.
    """

    name: ClassVar[str] = ""

    @abstractmethod
    def add_parser(self, sub: Any) -> Any:
        """Add the subcommand to argparse's subparsers object ``sub`` and return its parser."""

    @abstractmethod
    def run(self, args: Any) -> int:
        """Run with the parsed arguments; return the exit status (raise SpmlError for user errors)."""

    def validate_config(self, config: Any, path: Path) -> None:
        """Check the parts of a loaded config.yml this command reads (`spml config validate`); default: none."""
