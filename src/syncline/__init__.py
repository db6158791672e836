"""syncline: keep a local store in sync with HTTP APIs you can only poll.

The public surface is exactly ``__all__``; everything else is private and may
change. A test pins this list.
"""

from syncline.api import changes, iter_records, push, sql, sync
from syncline.config import Config, config_from_dict, load_config
from syncline.engine import JobResult, SyncSummary
from syncline.errors import (
    AuthError,
    BadPayload,
    ClientError,
    ConfigError,
    NetworkError,
    PaginationLoop,
    PermanentError,
    RateLimited,
    ServerError,
    SourceError,
    StoreError,
    SynclineError,
    TransientError,
    UnsafeNextLink,
)
from syncline.push.apply import PushSummary
from syncline.push.session import PushOutcome

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "BadPayload",
    "ClientError",
    "Config",
    "ConfigError",
    "JobResult",
    "NetworkError",
    "PaginationLoop",
    "PermanentError",
    "PushOutcome",
    "PushSummary",
    "RateLimited",
    "ServerError",
    "SourceError",
    "StoreError",
    "SyncSummary",
    "SynclineError",
    "TransientError",
    "UnsafeNextLink",
    "__version__",
    "changes",
    "config_from_dict",
    "iter_records",
    "load_config",
    "push",
    "sql",
    "sync",
]
