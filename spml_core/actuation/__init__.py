"""actuation: see docs/architecture.md."""
