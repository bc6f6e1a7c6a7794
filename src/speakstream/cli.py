"""Command line: ``speakstream serve|say|stream|type|voices|bench`` (or ``python -m speakstream``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speakstream import __version__
from speakstream.cli_client import COMMANDS, add_client_commands, run_client_command
from speakstream.config import KEYS, ConfigError, Settings, load_settings
from speakstream.engines.base import EngineLoadError


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (override the config file and SPEAKSTREAM_* env)")
    for key in KEYS:
        if key.kind is bool:
            group.add_argument(
                key.flag,
                dest=key.attr,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=key.help,
            )
        else:
            group.add_argument(
                key.flag,
                dest=key.attr,
                default=None,
                metavar=key.kind.__name__.upper(),
                help=key.help,
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

    bench = commands.add_parser("bench", help="run the latency benchmark (see bench/README)")
    bench.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    bench.add_argument("--audio", action="store_true", help="the encoder benchmark instead")
    bench.add_argument("--table", type=Path, help="print the README table of a results file")
    bench.add_argument("--output", type=Path, default=None, help="results JSON file")
    return parser


def _settings_from(args: argparse.Namespace) -> Settings:
    cli: dict[str, Any] = {key.attr: getattr(args, key.attr) for key in KEYS}
    return load_settings(config_path=args.config, env=os.environ, cli=cli)


def serve(settings: Settings) -> int:
    import uvicorn

    from speakstream.server.app import create_app, uvicorn_config

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    uvicorn.Server(uvicorn_config(app, settings)).run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(_settings_from(args))
        if args.command in COMMANDS:
            return run_client_command(args)
        if args.command == "bench":
            if args.table:
                import json

                from speakstream.bench import markdown_table

                print(markdown_table(json.loads(args.table.read_text())))
                return 0
            if args.audio:
                from speakstream.bench_audio import run_audio_bench

                return run_audio_bench(quick=args.quick, output=args.output)
            from speakstream.bench import run_bench

            return int(run_bench(quick=args.quick, output=args.output))
    except (ConfigError, EngineLoadError) as exc:
        print(f"speakstream: {exc}", file=sys.stderr)
        return 2
    return 1
