"""Data: tokenizer set-up, chat templates, reading chat files, encoding, preparation and its cache, collators.

Shared by every training method and by generation.
"""

__all__: list[str] = []
