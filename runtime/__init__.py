"""ftconfig runtime: load and validate configs (light), then resolve, build and train (heavy, imported lazily).

Only the torch-free names are exported here so that `import ftconfig.runtime` stays fast for the validator.
"""

from ftconfig.runtime.config._errors import ConfigError, DataError, ErrorItem, UserError
from ftconfig.runtime.config._load import load_config, load_config_file, parse_document, validate_document

__all__ = [
    "ConfigError",
    "DataError",
    "ErrorItem",
    "UserError",
    "load_config",
    "load_config_file",
    "parse_document",
    "validate_document",
]
