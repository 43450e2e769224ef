"""Hook implementations: only cheap imports here, the component module is imported on demand."""

from spml_core import hookimpl


@hookimpl
def spml_feature_extractors():
    """Register the example feature extractor."""
    from spml_example_plugin.features import VisibleCount

    return [VisibleCount]
