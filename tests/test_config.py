from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from speakstream.cli import build_parser, main
from speakstream.config import KEYS, ConfigError, Settings, load_settings


def test_every_key_has_a_settings_field_with_the_same_default() -> None:
    defaults = Settings()
    assert {k.attr for k in KEYS} == {f.name for f in fields(Settings)}
    for key in KEYS:
        assert getattr(defaults, key.attr) == key.default, key.name


def test_seed_keys_are_all_there() -> None:
    names = {k.name for k in KEYS}
    for seed_key in (
        "bidirectional_streaming.enabled",
        "max_concurrent_tasks",
        "task_timeout",
        "immediate_send",
        "queue_size",
        "min_text_length",
        "chunk_size",
        "preemptive_generation",
        "streaming_threshold",
    ):
        assert seed_key in names


def test_layers_override_in_order(tmp_path: Path) -> None:
    toml = tmp_path / "speakstream.toml"
    toml.write_text(
        "port = 9000\nchunk_size = 30\nqueue_size = 10\n[bidirectional_streaming]\nenabled = false\n"
    )
    env = {"SPEAKSTREAM_CHUNK_SIZE": "40", "SPEAKSTREAM_QUEUE_SIZE": "20"}
    settings = load_settings(config_path=toml, env=env, cli={"queue_size": "30", "port": None})
    assert settings.port == 9000  # file
    assert settings.chunk_size == 40  # env beats file
    assert settings.queue_size == 30  # flag beats env
    assert settings.bidirectional_streaming_enabled is False
    assert settings.min_text_length == 5  # default


def test_config_file_from_environment(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("immediate_send = false\n")
    settings = load_settings(
        env={"SPEAKSTREAM_CONFIG": str(toml), "SPEAKSTREAM_IMMEDIATE_SEND": "no"}
    )
    assert settings.immediate_send is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"env": {"SPEAKSTREAM_PORT": "eighty"}}, "'port'"),
        ({"env": {"SPEAKSTREAM_PORT": "70000"}}, "'port'"),
        ({"env": {"SPEAKSTREAM_NOPE": "1"}}, "SPEAKSTREAM_NOPE"),
        ({"env": {"SPEAKSTREAM_IMMEDIATE_SEND": "maybe"}}, "'immediate_send'"),
        ({"cli": {"task_timeout": "0"}}, "'task_timeout'"),
        ({"cli": {"engine": "espeak"}}, "'engine'"),
        ({"cli": {"chunk_size": "300"}}, "'max_chunk_size'"),
    ],
)
def test_invalid_configuration_names_the_key(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("chunk_size = 'big'\n", "'chunk_size'"),
        ("colour = 1\n", "'colour'"),
        ("port = \n", "not valid TOML"),
    ],
)
def test_invalid_config_file(tmp_path: Path, content: str, message: str) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(config_path=toml)


def test_cli_flags_exist_for_every_key() -> None:
    args = build_parser().parse_args(
        ["serve", "--no-bidirectional-streaming-enabled", "--port", "1234"]
    )
    assert args.bidirectional_streaming_enabled is False and args.port == "1234"


def test_serve_fails_at_start_with_a_message_naming_the_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--max-concurrent-tasks", "0"]) == 2
    assert "max_concurrent_tasks" in capsys.readouterr().err
