"""TLS served directly (ssl_certfile, ssl_keyfile): the client and the CLI speak wss://,
with a self-signed certificate made here."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from speakstream.client import connect
from speakstream.engines import Engine
from tests.conftest import running_server

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


async def test_wss_with_a_self_signed_certificate(piper_engine: Engine, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    async with running_server(piper_engine, ssl_certfile=str(cert), ssl_keyfile=str(key)) as srv:
        url = f"wss://127.0.0.1:{srv.port}/v1/stream"
        trust = ssl.create_default_context(cafile=str(cert))
        async with connect(url, ssl=trust) as conn:
            ctx = conn.context("a")
            await ctx.send("Spoken over TLS.")
            await ctx.end()
            result = await ctx.collect()
        assert not result.errors and len(result.audio) > 0
        # the CLI too, trusting the certificate through SSL_CERT_FILE
        out = tmp_path / "tls.wav"
        env = {**os.environ, "SSL_CERT_FILE": str(cert)}
        command = [sys.executable, "-m", "speakstream", "say", "--url", url, "-o", str(out), "Hi."]
        done = await asyncio.to_thread(
            subprocess.run, command, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert out.stat().st_size > 1000
        # a plain ws:// client cannot talk to it
        with pytest.raises(Exception):  # noqa: B017 - the handshake fails, how varies
            async with connect(f"ws://127.0.0.1:{srv.port}/v1/stream", open_timeout_s=5):
                pass
