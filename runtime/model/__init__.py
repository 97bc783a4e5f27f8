"""The model side: reference checks (light), loading, quantization, embedding growth, PEFT adapters."""

__all__: list[str] = []
