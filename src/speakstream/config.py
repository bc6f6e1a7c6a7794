"""Server settings: defaults, then a TOML file, then environment variables, then CLI flags.

Each layer overrides the one before. Every key is declared once, as a field of
``Settings`` (type, default, bounds, help; a default that a component owns is taken from
that component); ``KEYS`` derive from those fields: the environment variable is
``SPEAKSTREAM_`` + the key in upper case with dots as underscores, the flag is ``--`` + the
key with dots and underscores as dashes. Invalid configuration raises ``ConfigError`` naming the key and where it came from.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from speakstream.audio.seams import SeamPolicy
from speakstream.engines.chatterbox.options import VARIANTS, ChatterboxOptions
from speakstream.protocol.errors import SpeakstreamError
from speakstream.protocol.outputs import SessionConfig
from speakstream.segmenter import SegmenterPolicy

ENV_PREFIX = "SPEAKSTREAM_"
CONFIG_ENV = "SPEAKSTREAM_CONFIG"


class ConfigError(SpeakstreamError, ValueError):
    """Configuration that cannot be used; the message names the key."""


T = TypeVar("T")

# Defaults owned by the components that use them: a setting takes its default from there.
_SEGMENTER = SegmenterPolicy()
_SEAMS = SeamPolicy()
_SESSION = SessionConfig(voices={"-": 1}, default_voice="-", encodings=frozenset())
_CHATTERBOX = ChatterboxOptions()


def setting(
    default: T,
    help: str,
    low: float | None = None,
    high: float | None = None,
    *,
    choices: tuple[str, ...] | None = None,
    name: str | None = None,
) -> T:
    """Declare a setting: its default, help, bounds or choices, and (for keys nested in
    TOML tables) its dotted name. Its type is the field's annotation."""
    meta = {"help": help, "low": low, "high": high, "choices": choices, "name": name}
    return field(default=default, metadata=meta)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every server setting, declared once. ``KEYS`` (TOML name, env var, flag) derive
    from these fields."""

    host: str = setting("127.0.0.1", "address to listen on")
    port: int = setting(8000, "TCP port to listen on", 0, 65535)
    wyoming_port: int = setting(
        0, "TCP port of the Wyoming listener (Home Assistant's protocol); 0: off", 0, 65535
    )
    engine: str = setting("piper", "speech engine", choices=("piper", "fake", "chatterbox"))
    voice: str = setting("", "default voice (empty: the engine's first voice)")
    voices_dir: str = setting("", "directory with more Piper voices (NAME.onnx + NAME.onnx.json)")
    engine_threads: int = setting(
        0, "ONNX Runtime threads for a lone request (0: all cores)", 0, 256
    )
    # the chatterbox engine (docs/chatterbox.md); they reach it as EngineSettings.options
    chatterbox_checkpoint_dir: str = setting(
        _CHATTERBOX.checkpoint_dir,
        "chatterbox: directory with ve/t3_cfg/s3gen .safetensors, tokenizer.json (+ conds.pt)",
        name="chatterbox.checkpoint_dir",
    )
    chatterbox_variant: str = setting(
        _CHATTERBOX.variant,
        "chatterbox: standard (ChatterboxTTS) or turbo (ChatterboxTurboTTS, its own files)",
        choices=VARIANTS,
        name="chatterbox.variant",
    )
    chatterbox_device: str = setting(
        _CHATTERBOX.device, "chatterbox: auto, cpu, cuda, cuda:N or mps", name="chatterbox.device"
    )
    chatterbox_preload: bool = setting(
        _CHATTERBOX.preload,
        "chatterbox: load the model at start (false: on the first segment)",
        name="chatterbox.preload",
    )
    chatterbox_reference_wav: str = setting(
        _CHATTERBOX.reference_wav,
        "chatterbox: a recording to clone as the voice 'reference'",
        name="chatterbox.reference_wav",
    )
    chatterbox_exaggeration: float = setting(
        _CHATTERBOX.exaggeration,
        "chatterbox: emotion intensity",
        0.0,
        2.0,
        name="chatterbox.exaggeration",
    )
    chatterbox_cfg_weight: float = setting(
        _CHATTERBOX.cfg_weight,
        "chatterbox: guidance weight (0: none, faster)",
        0.0,
        2.0,
        name="chatterbox.cfg_weight",
    )
    chatterbox_temperature: float = setting(
        _CHATTERBOX.temperature,
        "chatterbox: sampling temperature",
        0.05,
        5.0,
        name="chatterbox.temperature",
    )
    chatterbox_max_new_tokens: int = setting(
        _CHATTERBOX.max_new_tokens,
        "chatterbox: speech tokens per segment at most (25 a second)",
        1,
        4096,
        name="chatterbox.max_new_tokens",
    )
    chatterbox_seed: int = setting(
        _CHATTERBOX.seed,
        "chatterbox: sampling seed (0: a fresh one per segment)",
        0,
        2**31 - 1,
        name="chatterbox.seed",
    )
    chatterbox_stream: bool = setting(
        _CHATTERBOX.stream,
        "chatterbox: vocode in pieces inside a sentence",
        name="chatterbox.stream",
    )
    chatterbox_cfm_steps: int = setting(
        _CHATTERBOX.cfm_steps,
        "chatterbox: flow-matching steps per decode (0: the variant's, 10 or 2)",
        0,
        100,
        name="chatterbox.cfm_steps",
    )
    chatterbox_upload_dir: str = setting(
        _CHATTERBOX.upload_dir,
        "chatterbox: where POST /v1/voices stores reference recordings (empty: uploads off)",
        name="chatterbox.upload_dir",
    )
    chatterbox_upload_max_bytes: int = setting(
        _CHATTERBOX.upload_max_bytes,
        "chatterbox: largest upload body",
        1000,
        100_000_000,
        name="chatterbox.upload_max_bytes",
    )
    chatterbox_upload_max_s: float = setting(
        _CHATTERBOX.upload_max_s,
        "chatterbox: longest uploaded recording (seconds)",
        1.0,
        600.0,
        name="chatterbox.upload_max_s",
    )
    bidirectional_streaming_enabled: bool = setting(
        True,
        "receive, synthesize and send concurrently (false: one after another, the baseline)",
        name="bidirectional_streaming.enabled",
    )
    max_concurrent_tasks: int = setting(
        2, "synthesis jobs running at once, server-wide (the engine worker pool)", 1, 256
    )
    first_segment_extra_workers: int = setting(
        1,
        "engine threads beyond max_concurrent_tasks that only a context's first segment "
        "takes, while every worker is busy and one with a later segment (it starts at once, "
        "sharing the cores, instead of waiting for a long segment to end); 0: none",
        0,
        16,
    )
    reserve_horizon_s: float = setting(
        1.0,
        "a later segment due further ahead than this (seconds) leaves the last free worker "
        "to first segments and due work (3600: never)",
        0,
        3600,
    )
    max_jobs_in_flight: int = setting(
        _SESSION.max_jobs_in_flight,
        "segments per connection being synthesized or waiting to be sent (bounds reordering)",
        1,
        256,
    )
    admission_fraction: float = setting(
        0.9,
        "refuse new contexts (busy) once the open ones reach this fraction of the listeners "
        "the engine can feed in real time, learned as it runs (0: never refuse)",
        0,
        10,
    )
    task_timeout: float = setting(10.0, "seconds a segment's synthesis may take", 0.01, 3600)
    immediate_send: bool = setting(
        _SESSION.immediate_send, "send each audio chunk as soon as it exists"
    )
    queue_size: int = setting(
        64, "outbound messages queued per connection (backpressure)", 1, 100_000
    )
    write_timeout_s: float = setting(
        30.0,
        "seconds one write to a client may wait; a client that reads nothing longer is "
        "closed with 1008",
        0.1,
        3600,
    )
    header_timeout_s: float = setting(
        10.0,
        "seconds a new socket may take to send its HTTP request headers (then 408)",
        0.1,
        3600,
    )
    min_text_length: int = setting(
        _SEGMENTER.min_text_length, "characters in the first segment, at least", 1, 1000
    )
    chunk_size: int = setting(_SEGMENTER.chunk_size, "target length of the second segment", 1, 5000)
    chunk_growth: float = setting(
        _SEGMENTER.chunk_growth, "growth of the target length per segment", 1.0, 10.0
    )
    max_chunk_size: int = setting(_SEGMENTER.max_chunk_size, "largest target length", 1, 20_000)
    preemptive_generation: bool = setting(
        _SEGMENTER.preemptive_generation, "start the first segment before a sentence ends"
    )
    streaming_threshold: float = setting(
        _SEGMENTER.streaming_threshold_s,
        "seconds of input silence that flush whole words",
        0.001,
        60,
    )
    partial_word_timeout: float = setting(
        _SEGMENTER.partial_word_timeout_s,
        "seconds of silence that flush a partial word",
        0.001,
        600,
    )
    cuts: str = setting(
        "natural" if _SEGMENTER.natural_cuts else "eager",
        "natural: after the first segment, cut inside a sentence only when the listener would "
        "run dry; eager: also at growth targets and on every input pause",
        choices=("natural", "eager"),
    )
    phrase_words: int = setting(
        _SEGMENTER.phrase_words,
        "natural cuts: a listener that has run dry waits for this many whole words, a clause "
        "end or an input pause (streaming_threshold) before they are spoken; 1: each word at once",
        1,
        50,
    )
    first_segment_budget_ms: float = setting(
        _SESSION.first_segment_budget_ms,
        "the first segment runs on to the first clause already received when the engine "
        "makes it within this many ms (0: the first word boundary)",
        0,
        10_000,
    )
    carry_left_words: int = setting(
        _SESSION.carry.left_words,
        "context-carrying synthesis: a segment cut inside a sentence is spoken after up to "
        "this many words of the sentence before it, whose audio is not sent (0: off)",
        0,
        32,
    )
    carry_right_words: int = setting(
        _SESSION.carry.right_words,
        "context-carrying synthesis: and before up to this many words already received "
        "after it (0: off)",
        0,
        16,
    )
    carry_filler: str = setting(
        _SESSION.carry.filler,
        "context-carrying synthesis: the word said (and not sent) after a segment cut inside "
        "a sentence before the next word has arrived ('': none)",
    )
    carry_max_load: float = setting(
        _SESSION.carry.max_load,
        "context-carrying synthesis: no context words while the listeners open need more "
        "than this share of the engine and others' segments are waiting (1: always carry)",
        0.0,
        1.0,
    )
    playback_low_water_ms: float = setting(
        _SESSION.playback_low_water_ms,
        "natural cuts: the margin between a segment's forecast arrival and the listener "
        "running dry; eager cuts: speak the whole words buffered when released audio has "
        "this little left (0: off)",
        0,
        10_000,
    )
    default_encoding: str = setting(
        _SESSION.default_encoding, "audio encoding when a context names none"
    )
    trim_silence: bool = setting(
        _SEAMS.trim_silence, "trim the engine's silence at segment joins, pause by punctuation"
    )
    clause_pause_ms: float = setting(
        _SEAMS.clause_pause_ms, "pause after a clause (, ; :) between segments", 0, 5000
    )
    sentence_pause_ms: float = setting(
        _SEAMS.sentence_pause_ms, "pause after a sentence between segments", 0, 5000
    )
    paragraph_pause_ms: float = setting(
        _SEAMS.paragraph_pause_ms, "pause after a paragraph between segments", 0, 5000
    )
    max_contexts: int = setting(
        _SESSION.max_contexts, "contexts open at once on one connection", 1, 10_000
    )
    max_connections: int = setting(64, "WebSocket connections at once, server-wide", 1, 1_000_000)
    max_message_bytes: int = setting(
        65_536, "largest client message (bytes)", 256, 64 * 1024 * 1024
    )
    max_text_chars: int = setting(
        _SESSION.max_text_chars, "largest text in one message (characters)", 1, 10_000_000
    )
    max_buffered_chars: int = setting(
        _SESSION.max_buffered_chars, "characters per context not yet spoken", 1, 100_000_000
    )
    max_errors: int = setting(
        _SESSION.max_errors, "protocol errors before a socket is closed with 1008", 1, 1_000_000
    )
    voice_map: str = setting(
        "",
        "vendor voice ids to our voices for the compatibility endpoints: 'ID=VOICE,ID2=VOICE2' "
        "(an id not listed gets the default voice, or is refused: accept_unknown_voices)",
    )
    accept_unknown_voices: bool = setting(
        True, "compatibility endpoints: a vendor voice id not in voice_map speaks the default voice"
    )
    log_level: str = setting("info", "logging level", choices=("debug", "info", "warning", "error"))
    log_format: str = setting(
        "text", "log lines as text, or one JSON object per line", choices=("text", "json")
    )
    drain_timeout_s: float = setting(
        30.0,
        "on SIGTERM, seconds active contexts may take to finish before sockets close with 1001",
        0,
        3600,
    )
    api_keys: str = setting(
        "", "API keys, comma-separated, each 'KEY' or 'ID:KEY' (better: api_keys_file)"
    )
    api_keys_file: str = setting(
        "", "file of API keys, one 'KEY' or 'ID:KEY' a line (# comments); re-read on SIGHUP"
    )
    auth: bool = setting(
        True,
        "refuse to serve a non-loopback address without API keys (--no-auth: serve anyone "
        "who can reach the port)",
    )
    token_secret: str = setting(
        "", "secret that signs POST /v1/tokens tokens (empty: random per process)"
    )
    token_ttl_s: float = setting(300.0, "longest life of a token from POST /v1/tokens", 1, 86_400)
    allowed_origins: str = setting(
        "",
        "Origins allowed to open sockets, comma-separated, '*' for any (the page's own: always)",
    )
    max_connections_per_key: int = setting(
        16, "WebSocket connections at once per API key", 1, 1_000_000
    )
    max_chars_per_minute_per_key: int = setting(
        0, "text characters per API key per minute (0: no limit)", 0, 1_000_000_000
    )
    max_messages_per_s: float = setting(
        100.0, "client messages per second per connection (token bucket rate)", 0.1, 1_000_000
    )
    message_burst: int = setting(
        200, "client messages a connection may send at once above the rate", 1, 1_000_000
    )
    ws_ping_interval_s: float = setting(
        20.0, "seconds between WebSocket pings (0: no pings)", 0, 3600
    )
    ws_ping_timeout_s: float = setting(
        20.0, "seconds a ping may wait for its pong before the socket is closed", 0.1, 3600
    )
    ssl_certfile: str = setting("", "TLS certificate (PEM) to serve https/wss directly")
    ssl_keyfile: str = setting("", "TLS private key (PEM) of ssl_certfile")

    def engine_options(self) -> dict[str, Any]:
        """The configured engine's own settings (``<engine>.*``), named without the prefix."""
        prefix = f"{self.engine}."
        return {
            key.name[len(prefix) :]: getattr(self, key.attr)
            for key in KEYS
            if key.name.startswith(prefix)
        }

    def replace(self, **changes: Any) -> Settings:
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Key:
    """A setting as the outside sees it: TOML name, environment variable, flag."""

    name: str  # as written in TOML, dotted for nested tables
    attr: str  # the ``Settings`` field
    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.attr.upper()

    @property
    def flag(self) -> str:
        return "--" + self.attr.replace("_", "-")


def _keys() -> tuple[Key, ...]:
    types = get_type_hints(Settings)
    keys = []
    for f in fields(Settings):
        meta = f.metadata
        keys.append(
            Key(
                name=meta["name"] or f.name,
                attr=f.name,
                kind=types[f.name],
                default=f.default,
                help=meta["help"],
                low=meta["low"],
                high=meta["high"],
                choices=meta["choices"],
            )
        )
    return tuple(keys)


KEYS: tuple[Key, ...] = _keys()
KEYS_BY_NAME = {key.name: key for key in KEYS}


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
