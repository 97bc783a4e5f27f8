"""Developer tools: schema code generation, bundling, docs, checks, benchmarks and the tiny test model."""

__all__: list[str] = []
