"""harvester: download a whole dataset from a paginated, OAuth2-protected REST API."""

from harvester.config import Config, load_config, parse_config
from harvester.errors import (
    AuthError,
    CertificateError,
    ConfigError,
    HarvesterError,
    Interrupted,
    OutputError,
    OutputLocked,
    PageFetchError,
    RecordsError,
    ResumeError,
    TotalChangedError,
)
from harvester.runner import Stop, run
from harvester.stats import Stats

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "CertificateError",
    "Config",
    "ConfigError",
    "HarvesterError",
    "Interrupted",
    "OutputError",
    "OutputLocked",
    "PageFetchError",
    "RecordsError",
    "ResumeError",
    "Stats",
    "Stop",
    "TotalChangedError",
    "__version__",
    "load_config",
    "parse_config",
    "run",
]
