"""ftconfig: config-driven supervised finetuning, described by one JSON Schema."""

__all__: list[str] = []

__version__ = "0.1.0"
