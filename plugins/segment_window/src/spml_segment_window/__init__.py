"""spml-segment-window: StreamPoseML's five segmentation strategies, with its bugs fixed."""

__version__ = "0.1.0"
