"""Load the YAML config, expand ${VAR}, validate once, and hand out frozen config objects.

Everything downstream trusts these objects: every check that can be made before the first
request is made here, and every error names its key path (`pagination.page_size: must be > 0`).

    schema.py   the frozen config objects, and what a config puts at risk on purpose
    masking.py  Secret, and config objects as data and reprs with every secret shown as ***
    loading.py  YAML, ${VAR}, relative paths and overrides, then build and check
    coerce.py   raw YAML values into the dataclasses, each error naming its key path
    checks.py   the checks across fields that no type can make
    json_schema.py  the JSON Schema editors read (`harvester schema`), derived from schema.py
"""

from harvester.config.checks import parse_timestamp
from harvester.config.loading import MAX_DEPTH, MAX_VALUES, PATH_KEYS, load_config, parse_config
from harvester.config.masking import Secret
from harvester.config.schema import (
    INDEXED_STYLES,
    AuthConfig,
    AuthMethod,
    AuthType,
    ConcurrencyConfig,
    Config,
    IncrementalConfig,
    LongQuota,
    OnMissing,
    OnMissingCursor,
    OutputConfig,
    PaginationConfig,
    PaginationStyle,
    PartitionConfig,
    RepeatedPages,
    RetryConfig,
    SourceConfig,
    TlsConfig,
)

__all__ = [
    "INDEXED_STYLES",
    "MAX_DEPTH",
    "MAX_VALUES",
    "PATH_KEYS",
    "AuthConfig",
    "AuthMethod",
    "AuthType",
    "ConcurrencyConfig",
    "Config",
    "IncrementalConfig",
    "LongQuota",
    "OnMissing",
    "OnMissingCursor",
    "OutputConfig",
    "PaginationConfig",
    "PaginationStyle",
    "PartitionConfig",
    "RepeatedPages",
    "RetryConfig",
    "Secret",
    "SourceConfig",
    "TlsConfig",
    "load_config",
    "parse_config",
    "parse_timestamp",
]
