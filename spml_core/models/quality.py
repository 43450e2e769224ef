"""Quality warnings for metrics.json: the ways a cross-validated model can look usable while it is not.

Each warning is ``{"code": ..., "message": ...}``: the code is stable (CI and the web app key on it),
the message is a sentence naming the class, fold or figure. docs/models.md lists every code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from spml_core.models.metrics import label_runs

if TYPE_CHECKING:
    from spml_core.models.evaluation import CVResult
    from spml_core.models.examples import ExampleSet

MIN_EXAMPLES = 30
MIN_EVENTS = 3

# Notes raised by the split planner and the fold loop, as free text, get a code from their wording.
_NOTE_CODES = (
    ("random split", "leaky_split"),
    ("no training rows", "empty_training_fold"),
    ("training part holds only", "single_class_training_fold"),
    ("holdout evaluation on the bundle's own training data", "holdout_on_training_data"),
    ("are not classes of the model", "labels_not_in_model"),
)


def warning(code: str, message: str) -> dict[str, str]:
    """One warning entry of metrics.json."""
    return {"code": code, "message": message}


def as_warning(item: str | dict[str, str]) -> dict[str, str]:
    """A free-text note from the splitter or fold loop as a coded warning (dicts pass through)."""
    if isinstance(item, dict):
        return item
    for needle, code in _NOTE_CODES:
        if needle in item:
            return warning(code, item)
    return warning("note", item)


def baseline_warning(overall: dict[str, Any], baseline: dict[str, float]) -> list[dict[str, str]]:
    """At or below the majority-class baseline, in accuracy or in balanced accuracy."""
    acc, bal = overall["accuracy"], overall["balanced_accuracy"]
    majority, chance = baseline["majority_class_accuracy"], baseline["chance_balanced_accuracy"]
    if acc <= majority or bal <= chance:
        return [warning(
            "at_or_below_baseline",
            f"the model is no better than always answering the most common class: accuracy {acc:.3f} vs "
            f"{majority:.3f} for the majority class, balanced accuracy {bal:.3f} vs {chance:.3f} chance",
        )]
    return []


def count_events(ex: ExampleSet) -> dict[str, int]:
    """Annotated events (runs of one label on consecutive frames) per class, over all videos."""
    events: dict[str, int] = {}
    for frames, labels in ex.frame_labels.values():
        for label, _, _ in label_runs(frames, labels):
            events[label] = events.get(label, 0) + 1
    return events


def data_warnings(
    ex: ExampleSet, min_examples: int = MIN_EXAMPLES, min_events: int = MIN_EVENTS
) -> list[dict[str, str]]:
    """Classes with too few examples or annotated events to learn or to judge."""
    out = []
    counts = ex.class_counts()
    events = count_events(ex)
    for c in ex.classes:
        if counts.get(c, 0) < min_examples:
            out.append(warning("few_examples", f"class '{c}' has {counts.get(c, 0)} examples (fewer than "
                                               f"{min_examples}): its scores are noise"))
        if ex.frame_labels and events.get(c, 0) < min_events:
            out.append(warning(
                "few_events", f"class '{c}' occurs in {events.get(c, 0)} annotated event(s) (fewer than "
                f"{min_events}): every fold tests it on events it has barely or never seen, so the model "
                "learns the moments, not the movement; annotate more occurrences"))
    return out


def cv_warnings(ex: ExampleSet, cv: CVResult) -> list[dict[str, str]]:
    """Warnings about the folds themselves: one group only, classes missing from training or testing."""
    out = []
    n_groups = int(np.unique(ex.groups).size)
    if cv.plan.kind == "blocked" and n_groups < 2:
        out.append(warning(
            "single_group", f"all examples come from one {ex.group_column} ({np.unique(ex.groups)[0]}): blocked "
            "time splits measure recognition later in the same recording, not on a new recording or person"))
    for i, fold in enumerate(cv.plan.folds):
        if fold.train.size == 0:
            continue
        missing = sorted(set(ex.classes) - set(ex.y[fold.train].tolist()))
        if missing:
            out.append(warning(
                "class_missing_from_training_fold",
                f"fold {i + 1}: class(es) {', '.join(map(repr, missing))} never occur in its training part, so its "
                "model cannot predict them"))
    tested = set(ex.y[cv.tested].tolist())
    for c in ex.classes:
        if c not in tested:
            out.append(warning("class_never_tested",
                               f"class '{c}' is in no test fold: the scores say nothing about it"))
    return out


def folds_warning(recorded: dict[str, Any] | None, kind: str, n_folds: int) -> list[dict[str, str]]:
    """Evaluation folds that differ from the ones training reported (the scores are then not comparable)."""
    if not recorded:
        return []
    r_kind, r_folds = recorded.get("kind"), recorded.get("n_folds")
    if (r_kind, r_folds) != (kind, n_folds):
        return [warning("folds_differ", f"these scores come from {n_folds} {kind} folds; training reported "
                                        f"{r_folds} {r_kind} folds, so the two are not comparable")]
    return []


def dedupe(items: list[dict[str, str]]) -> list[dict[str, str]]:
    """Warnings in order, each message once."""
    seen: set[str] = set()
    out = []
    for w in items:
        if w["message"] not in seen:
            seen.add(w["message"])
            out.append(w)
    return out
