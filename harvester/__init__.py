"""harvester: download a whole dataset from a paginated, OAuth2-protected REST API.

    stats = harvester.harvest("config.yaml")       # a script or a notebook cell
    stats = await harvester.harvest_async(config)  # inside a coroutine

Only what `__all__` lists is the public API; everything else may change.
"""

from harvester.api import harvest, harvest_async
from harvester.budget import RateBudget, TokenSource
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
    ShardError,
    TotalChangedError,
)
from harvester.frames import to_arrow, to_pandas
from harvester.merge import Merged, merge_shards
from harvester.record_stream import iter_records, stream
from harvester.runner import Stop, run
from harvester.shard import Shard
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
    "RateBudget",
    "RecordsError",
    "Merged",
    "ResumeError",
    "Shard",
    "ShardError",
    "Stats",
    "Stop",
    "TokenSource",
    "TotalChangedError",
    "__version__",
    "harvest",
    "harvest_async",
    "iter_records",
    "load_config",
    "merge_shards",
    "parse_config",
    "run",
    "stream",
    "to_arrow",
    "to_pandas",
]
