"""Server settings: defaults, then a TOML file, then environment variables, then CLI flags.

Each layer overrides the one before. Every key is listed once in ``KEYS`` with its type,
default, bounds and help; the environment variable is ``SPEAKSTREAM_`` + the key in upper
case with dots as underscores, the flag is ``--`` + the key with dots and underscores as
dashes. Invalid configuration raises ``ConfigError`` naming the key and where it came from.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "SPEAKSTREAM_"
CONFIG_ENV = "SPEAKSTREAM_CONFIG"


class ConfigError(ValueError):
    """Configuration that cannot be used; the message names the key."""


@dataclass(frozen=True, slots=True)
class Key:
    name: str  # as written in TOML, dotted for nested tables
    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None

    @property
    def attr(self) -> str:
        return self.name.replace(".", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.attr.upper()

    @property
    def flag(self) -> str:
        return "--" + self.attr.replace("_", "-")


KEYS: tuple[Key, ...] = (
    Key("host", str, "127.0.0.1", "address to listen on"),
    Key("port", int, 8000, "TCP port to listen on", 0, 65535),
    Key("engine", str, "piper", "speech engine", choices=("piper", "fake")),
    Key("voice", str, "", "default voice (empty: the engine's first voice)"),
    Key("voices_dir", str, "", "directory with more Piper voices (NAME.onnx + NAME.onnx.json)"),
    Key("engine_threads", int, 0, "ONNX Runtime threads for a lone request (0: all cores)", 0, 256),
    Key(
        "bidirectional_streaming.enabled",
        bool,
        True,
        "receive, synthesize and send concurrently (false: one after another, the baseline)",
    ),
    Key(
        "max_concurrent_tasks",
        int,
        2,
        "synthesis jobs in flight, server-wide and per connection",
        1,
        256,
    ),
    Key("task_timeout", float, 10.0, "seconds a segment's synthesis may take", 0.01, 3600),
    Key("immediate_send", bool, True, "send each audio chunk as soon as it exists"),
    Key(
        "queue_size", int, 64, "outbound messages queued per connection (backpressure)", 1, 100_000
    ),
    Key("min_text_length", int, 5, "characters in the first segment, at least", 1, 1000),
    Key("chunk_size", int, 25, "target length of the second segment", 1, 5000),
    Key("chunk_growth", float, 2.0, "growth of the target length per segment", 1.0, 10.0),
    Key("max_chunk_size", int, 200, "largest target length", 1, 20_000),
    Key("preemptive_generation", bool, True, "start the first segment before a sentence ends"),
    Key(
        "streaming_threshold",
        float,
        0.1,
        "seconds of input silence that flush whole words",
        0.001,
        60,
    ),
    Key(
        "partial_word_timeout",
        float,
        1.0,
        "seconds of silence that flush a partial word",
        0.001,
        600,
    ),
    Key(
        "playback_low_water_ms",
        float,
        250.0,
        "speak the whole words buffered when released audio has this little left (0: off)",
        0,
        10_000,
    ),
    Key("default_encoding", str, "pcm_s16le", "audio encoding when a context names none"),
    Key(
        "trim_silence",
        bool,
        True,
        "trim the engine's silence at segment joins, pause by punctuation",
    ),
    Key("clause_pause_ms", float, 120.0, "pause after a clause (, ; :) between segments", 0, 5000),
    Key("sentence_pause_ms", float, 250.0, "pause after a sentence between segments", 0, 5000),
    Key("paragraph_pause_ms", float, 450.0, "pause after a paragraph between segments", 0, 5000),
    Key("max_contexts", int, 8, "contexts open at once on one connection", 1, 10_000),
    Key("max_connections", int, 64, "WebSocket connections at once, server-wide", 1, 1_000_000),
    Key("max_message_bytes", int, 65_536, "largest client message (bytes)", 256, 64 * 1024 * 1024),
    Key("max_text_chars", int, 10_000, "largest text in one message (characters)", 1, 10_000_000),
    Key("max_buffered_chars", int, 50_000, "characters per context not yet spoken", 1, 100_000_000),
    Key(
        "max_errors", int, 100, "protocol errors before a socket is closed with 1008", 1, 1_000_000
    ),
    Key("log_level", str, "info", "logging level", choices=("debug", "info", "warning", "error")),
)
KEYS_BY_NAME = {key.name: key for key in KEYS}


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    engine: str = "piper"
    voice: str = ""
    voices_dir: str = ""
    engine_threads: int = 0
    bidirectional_streaming_enabled: bool = True
    max_concurrent_tasks: int = 2
    task_timeout: float = 10.0
    immediate_send: bool = True
    queue_size: int = 64
    min_text_length: int = 5
    chunk_size: int = 25
    chunk_growth: float = 2.0
    max_chunk_size: int = 200
    preemptive_generation: bool = True
    streaming_threshold: float = 0.1
    partial_word_timeout: float = 1.0
    playback_low_water_ms: float = 250.0
    default_encoding: str = "pcm_s16le"
    trim_silence: bool = True
    clause_pause_ms: float = 120.0
    sentence_pause_ms: float = 250.0
    paragraph_pause_ms: float = 450.0
    max_contexts: int = 8
    max_connections: int = 64
    max_message_bytes: int = 65_536
    max_text_chars: int = 10_000
    max_buffered_chars: int = 50_000
    max_errors: int = 100
    log_level: str = "info"

    def replace(self, **changes: Any) -> Settings:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = set(changes) - set(values)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return Settings(**{**values, **changes})


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(key: Key, value: Any, source: str) -> Any:
    """A value of ``key``'s type from TOML (typed) or env/CLI (strings); checks bounds."""
    where = f"setting {key.name!r} (from {source})"
    try:
        if key.kind is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in _TRUE | _FALSE:
                    raise ValueError(f"expected true or false, got {value!r}")
                value = lowered in _TRUE
            elif not isinstance(value, bool):
                raise ValueError(f"expected true or false, got {value!r}")
        elif key.kind is int:
            if isinstance(value, bool | float):
                raise ValueError(f"expected an integer, got {value!r}")
            value = int(value)
        elif key.kind is float:
            if isinstance(value, bool):
                raise ValueError(f"expected a number, got {value!r}")
            value = float(value)
        elif not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if key.low is not None and value < key.low:
        raise ConfigError(f"{where}: {value!r} is below the minimum {key.low:g}")
    if key.high is not None and value > key.high:
        raise ConfigError(f"{where}: {value!r} is above the maximum {key.high:g}")
    if key.choices is not None and value not in key.choices:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(key.choices)}")
    return value


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in table.items():
        full = f"{prefix}{name}"
        if isinstance(value, dict) and full not in KEYS_BY_NAME:
            flat.update(_flatten(value, full + "."))
        else:
            flat[full] = value
    return flat


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            table = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for name, value in _flatten(table).items():
        key = KEYS_BY_NAME.get(name)
        if key is None:
            raise ConfigError(f"unknown setting {name!r} in {path}")
        values[key.attr] = _convert(key, value, str(path))
    return values


def read_env(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    known = {key.env: key for key in KEYS}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        key = known.get(name)
        if key is None:
            raise ConfigError(f"unknown environment variable {name}")
        values[key.attr] = _convert(key, raw, f"environment {name}")
    return values


def load_settings(
    *,
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    cli: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults < TOML file < environment < CLI. ``cli`` maps attribute names to values."""
    env = env or {}
    values: dict[str, Any] = {}
    if config_path is None and env.get(CONFIG_ENV):
        config_path = Path(env[CONFIG_ENV])
    if config_path is not None:
        values.update(read_toml(config_path))
    values.update(read_env(env))
    by_attr = {key.attr: key for key in KEYS}
    for attr, value in (cli or {}).items():
        if value is None:
            continue
        key = by_attr.get(attr)
        if key is None:
            raise ConfigError(f"unknown setting {attr!r}")
        values[attr] = _convert(key, value, f"flag {key.flag}")
    settings = Settings().replace(**values)
    if settings.max_chunk_size < settings.chunk_size:
        raise ConfigError(
            f"setting 'max_chunk_size' ({settings.max_chunk_size}) must be at least "
            f"'chunk_size' ({settings.chunk_size})"
        )
    return settings
