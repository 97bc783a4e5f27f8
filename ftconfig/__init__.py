"""ftconfig: config-driven supervised finetuning, described by one JSON Schema."""

from pathlib import Path as _Path

__all__: list[str] = []

__version__ = "0.1.0"


def _source_checkout_root() -> _Path | None:
    """The repository root when this folder is the `ftconfig/` of a source checkout, else None."""
    root = _Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "runtime" / "__init__.py").is_file():
        return root
    return None


# In a checkout, `runtime/`, `tools/`, `generated/` and `schema/` sit beside this folder, and pyproject.toml maps
# them into the package (ftconfig.runtime, ...). Python imports this folder instead of an installed ftconfig when
# it runs from the repository root (`python -m ftconfig`, `torchrun -m ftconfig`: the current directory comes
# first on sys.path), so the same mapping is made here; otherwise `ftconfig.runtime` would not exist there.
if (_root := _source_checkout_root()) is not None and str(_root) not in __path__:
    __path__.append(str(_root))
