"""StreamPoseML's learning package: ``model_builder.ModelBuilder`` on spml's models and safe bundles."""
