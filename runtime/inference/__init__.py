"""Using a trained result: load a run directory, chat, generate, merge, export for vLLM, evaluate."""
