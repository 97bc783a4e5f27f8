"""Training: the run top to bottom, the dry-run plan, checkpoints, their rotation and what a run writes."""

__all__: list[str] = []
