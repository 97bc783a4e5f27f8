"""tracking"""

__all__: list[str] = []
