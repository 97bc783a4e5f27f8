"""ftconfig: config-driven supervised finetuning, described by one JSON Schema."""

__version__ = "0.1.0"
