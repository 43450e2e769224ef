"""StreamPoseML's job entry points (process_videos_job, build_and_format_dataset_job), backed by spml."""
