"""Tracking: the pure plan (which server, experiment and run) and the MLflow client that carries it out."""

__all__: list[str] = []
