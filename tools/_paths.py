"""Where the schema sources and generated artifacts live, in a checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

import ftconfig.generated
import ftconfig.schema

__all__ = [
    "BUNDLE_FILE",
    "DOCS_DIR",
    "EXAMPLES_DIR",
    "GENERATED_DIR",
    "GENERATION_BUNDLE_FILE",
    "REPO_ROOT",
    "ROOT_SCHEMA",
    "SCHEMA_DIR",
    "STRUCTS_FILE",
    "is_source_checkout",
]

SCHEMA_DIR = Path(ftconfig.schema.__file__).resolve().parent
GENERATED_DIR = Path(ftconfig.generated.__file__).resolve().parent
REPO_ROOT = SCHEMA_DIR.parent
DOCS_DIR = REPO_ROOT / "docs"
EXAMPLES_DIR = REPO_ROOT / "examples"
ROOT_SCHEMA = SCHEMA_DIR / "experiment.schema.json"
STRUCTS_FILE = GENERATED_DIR / "config.py"
BUNDLE_FILE = GENERATED_DIR / "ftconfig.schema.json"
GENERATION_BUNDLE_FILE = GENERATED_DIR / "ftconfig-generation.schema.json"


def is_source_checkout() -> bool:
    """Whether this ftconfig runs from a clone of its repository (an editable install), where the generated
    files and docs are the repository's own; in an installed wheel they are part of the package."""
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "generated").resolve() == GENERATED_DIR
