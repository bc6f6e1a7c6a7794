from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from speakstream.cli import build_parser, main
from speakstream.config import KEYS, ConfigError, Settings, load_settings


def test_components_built_from_default_settings_keep_their_own_defaults() -> None:
    # Each default is declared once (in the component that uses it, or in Settings);
    # the builders must carry every setting to its component unchanged.
    from speakstream.audio.seams import SeamPolicy
    from speakstream.segmenter import SegmenterPolicy
    from speakstream.server.runtime import seam_policy, segmenter_policy

    defaults = Settings()
    assert segmenter_policy(defaults) == SegmenterPolicy()
    assert seam_policy(defaults) == SeamPolicy()
    changed = segmenter_policy(defaults.replace(chunk_size=40, streaming_threshold=0.3))
    assert changed.chunk_size == 40 and changed.streaming_threshold_s == 0.3


def test_keys_derive_from_settings_fields() -> None:
    assert [k.attr for k in KEYS] == [f.name for f in fields(Settings)]
    by_attr = {k.attr: k for k in KEYS}
    nested = by_attr["bidirectional_streaming_enabled"]
    assert nested.name == "bidirectional_streaming.enabled" and nested.kind is bool
    assert nested.env == "SPEAKSTREAM_BIDIRECTIONAL_STREAMING_ENABLED"
    assert by_attr["port"].kind is int and by_attr["port"].high == 65535
    assert by_attr["task_timeout"].kind is float
    assert all(k.help for k in KEYS)


def test_pool_size_and_per_connection_in_flight_are_two_keys() -> None:
    settings = load_settings(cli={"max_concurrent_tasks": "4", "max_jobs_in_flight": "3"})
    assert settings.max_concurrent_tasks == 4 and settings.max_jobs_in_flight == 3


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


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## Benchmarks")]
    missing = [key.name for key in KEYS if f"`{key.name}`" not in table]
    assert missing == []
