"""Configuration: frozen models, YAML loading with ``${VAR}`` interpolation, validation."""

from syncline.config.loader import config_from_dict, load_config
from syncline.config.models import (
    Config,
    GraphQLConfig,
    RunConfig,
    ScheduleConfig,
    SourceConfig,
    StreamConfig,
    WriteConfig,
)
from syncline.config.render import render_config

__all__ = [
    "Config",
    "GraphQLConfig",
    "RunConfig",
    "ScheduleConfig",
    "SourceConfig",
    "StreamConfig",
    "WriteConfig",
    "config_from_dict",
    "load_config",
    "render_config",
]
