"""Loading and resolving a config: parse, validate, convert to structs, resolve; user errors and secrets.

Light: nothing here imports torch at module level (the validator and `ftschema` use it).
"""

__all__: list[str] = []
