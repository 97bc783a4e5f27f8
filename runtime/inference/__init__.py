"""Using a trained result: load a run directory, chat, generate, merge, export for vLLM, evaluate."""

__all__: list[str] = []
