"""Command line: ``speakstream serve|say|stream|type|voices|bench`` (or ``python -m speakstream``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speakstream.bench import BENCHMARKS, DEFAULT_BENCHMARK, load_benchmark, load_table
from speakstream.client.cli import COMMANDS, add_client_commands, run_client_command
from speakstream.config import KEYS, ConfigError, Settings, load_settings
from speakstream.engines.base import EngineLoadError
from speakstream.version import __version__


def _shown_default(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == "":
        return "none"
    return str(value)


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (override the config file and SPEAKSTREAM_* env)")
    for key in KEYS:
        # default=None: a flag left out must not override the config file or the env.
        help_text = f"{key.help} (default: {_shown_default(key.default)})".replace("%", "%%")
        if key.kind is bool:
            group.add_argument(
                key.flag,
                dest=key.attr,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            group.add_argument(
                key.flag,
                dest=key.attr,
                default=None,
                metavar=key.kind.__name__.upper(),
                help=help_text,
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speakstream", description="Streaming text-to-speech server."
    )
    parser.add_argument("--version", action="version", version=f"speakstream {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    _add_setting_flags(serve)

    add_client_commands(commands)

    bench = commands.add_parser("bench", help="run a benchmark (see bench/README.md)")
    bench.add_argument(
        "benchmark",
        nargs="?",
        choices=list(BENCHMARKS),
        help=f"which one (default: {DEFAULT_BENCHMARK})",
    )
    bench.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    bench.add_argument("--audio", action="store_true", help="the same as `bench encoders`")
    bench.add_argument("--table", type=Path, help="print the README table of a results file")
    bench.add_argument("--output", type=Path, default=None, help="results JSON file")
    return parser


def _settings_from(args: argparse.Namespace) -> Settings:
    cli: dict[str, Any] = {key.attr: getattr(args, key.attr) for key in KEYS}
    return load_settings(config_path=args.config, env=os.environ, cli=cli)


def serve(settings: Settings) -> int:
    from speakstream.server.app import create_app, server_for
    from speakstream.server.log_format import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    server_for(app, settings).run()  # SIGTERM: drain, then exit 0 (server.drain)
    return 0


def bench(args: argparse.Namespace) -> int:
    """``bench [NAME] [--quick] [--output FILE] [--table FILE]``; ``--audio`` = ``encoders``."""
    name = args.benchmark or ("encoders" if args.audio else DEFAULT_BENCHMARK)
    if args.audio and name != "encoders":
        print(f"speakstream bench: --audio means `encoders`, not {name!r}", file=sys.stderr)
        return 2
    if args.table:
        import json

        table = load_table(name)
        if table is None:
            print(f"speakstream bench: the {name} benchmark has no table", file=sys.stderr)
            return 2
        print(table(json.loads(args.table.read_text())))
        return 0
    return load_benchmark(name)(quick=args.quick, output=args.output)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(_settings_from(args))
        if args.command in COMMANDS:
            return run_client_command(args)
        if args.command == "bench":
            return bench(args)
    except (ConfigError, EngineLoadError) as exc:
        print(f"speakstream: {exc}", file=sys.stderr)
        return 2
    return 1
