"""Where the schema sources and generated artifacts live, in a checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

import ftconfig.generated
import ftconfig.schema

SCHEMA_DIR = Path(ftconfig.schema.__file__).resolve().parent
GENERATED_DIR = Path(ftconfig.generated.__file__).resolve().parent
REPO_ROOT = SCHEMA_DIR.parent
DOCS_DIR = REPO_ROOT / "docs"
EXAMPLES_DIR = REPO_ROOT / "examples"
ROOT_SCHEMA = SCHEMA_DIR / "finetuning.schema.json"
STRUCTS_FILE = GENERATED_DIR / "config.py"
BUNDLE_FILE = GENERATED_DIR / "ftconfig.schema.json"
GENERATION_BUNDLE_FILE = GENERATED_DIR / "ftconfig-generation.schema.json"
