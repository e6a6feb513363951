"""One entry point for loading a configuration in either format."""

from __future__ import annotations

from pathlib import Path

from director.config.errors import ConfigError, Diagnostics, Problem
from director.config.incremental import LoadCache
from director.config.model import Config

FORMATS = ("auto", "keepalived", "yaml")
YAML_SUFFIXES = (".yaml", ".yml", ".json")  # JSON is YAML's subset: same loader


def detect_format(path: str) -> str:
    return "yaml" if Path(path).suffix.lower() in YAML_SUFFIXES else "keepalived"


_CACHE = LoadCache()


def load_config(path: str, *, strict: bool = False, config_id: str | None = None,
                input_format: str = "auto", cache: LoadCache | None = _CACHE,
                defer_moves: bool = False) -> tuple[Config, list[Problem]]:
    """Load, build and validate a configuration; raise ConfigError with every problem
    when it does not validate. Returns the config and its warnings.

    A keepalived.conf loaded again reuses, through ``cache`` (by default one shared by
    the process), what the earlier loads of the file built from unchanged blocks: a
    reload of a large file that changed a little costs little. The result is the one
    a fresh load gives (with ``defer_moves``, once `settle_config` has been given it:
    see `LoadCache.load`); ``cache=None`` makes one."""
    if input_format == "auto":
        input_format = detect_format(path)
    if input_format == "yaml":
        from director.config.yaml_config import load_yaml

        diag = Diagnostics(strict=strict)
        config = load_yaml(path, diag)
        if config is None or diag.failed:
            raise ConfigError(diag.problems)
        return config, diag.problems
    if cache is not None:
        return cache.load(path, strict=strict, config_id=config_id, defer_moves=defer_moves)
    from director.config.keepalived import load_keepalived

    return load_keepalived(path, strict=strict, config_id=config_id)


def settle_config(config: Config, cache: LoadCache = _CACHE) -> Config:
    """The last configuration `load_config` returned with the origins it left behind
    (``defer_moves``) moved to their lines; any other configuration as it is."""
    return cache.settle(config)


def reuse_summary(cache: LoadCache = _CACHE) -> str:
    """What the last load through ``cache`` reused, for the reload's log line."""
    return (f"{cache.reused} virtual server(s) reused ({cache.moved} moved to other lines), "
            f"the rest built")
