"""Auth (server.auth): keys, tokens, Origins, per-key connection limit, the bind check.

Unit tests for the pieces, then every path against a real server: refusals are HTTP
responses before the upgrade with the JSON of an ``error`` message.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from speakstream.config import ConfigError, Settings
from speakstream.engines import Engine
from speakstream.server.auth import (
    Auth,
    KeyStore,
    TokenSigner,
    check_bind,
    credential_of,
    is_loopback,
    parse_keys,
)
from speakstream.server.runtime import Runtime
from tests.conftest import running_server, wait_for

pytestmark = pytest.mark.timeout(60)

KEY = "s3cret-key-one"
OTHER_KEY = "another-key-two"


# --- pieces ----------------------------------------------------------------------------------


def test_keys_are_kept_hashed_and_named() -> None:
    keys = parse_keys("# comment\nalice:" + KEY + "\n\n" + OTHER_KEY + "\n")
    assert KEY not in json.dumps(keys) and OTHER_KEY not in json.dumps(keys)
    store = KeyStore(inline="", path="")
    assert not store.enabled
    store = KeyStore(inline=f"alice:{KEY},{OTHER_KEY}")
    assert store.lookup(KEY) == "alice"
    assert (store.lookup(OTHER_KEY) or "").startswith("key-")
    assert store.lookup("alice") is None and store.lookup("") is None


def test_key_file_is_reread_on_reload(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"alice:{KEY}\n")
    store = KeyStore(path=str(path))
    assert store.lookup(KEY) == "alice"
    path.write_text(f"bob:{OTHER_KEY}\n")  # rotated
    store.reload()
    assert store.lookup(KEY) is None
    assert store.lookup(OTHER_KEY) == "bob"


def test_unreadable_key_file_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="api_keys_file"):
        KeyStore(path=str(tmp_path / "missing"))


def test_tokens_expire_and_carry_their_signer() -> None:
    signer = TokenSigner("secret-a")
    token = signer.issue("alice", 60, now_s=1000.0)
    assert signer.verify(token, 1059.0) == "alice"
    assert signer.verify(token, 1060.0) is None  # expired
    assert TokenSigner("secret-b").verify(token, 1001.0) is None  # another secret
    head, _, tail = token.partition(".")
    assert signer.verify(head + "x." + tail, 1001.0) is None  # tampered payload
    assert signer.verify("garbage", 1001.0) is None


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        ({"authorization": "Bearer abc"}, "", "abc"),
        ({"authorization": "Token abc"}, "", "abc"),
        ({"authorization": "Basic abc"}, "", None),
        ({"xi-api-key": "abc"}, "", "abc"),
        ({"x-api-key": "abc"}, "", "abc"),
        ({}, "api_key=abc", "abc"),
        ({}, "xi-api-key=abc", "abc"),
        ({}, "token=abc", "abc"),
        ({}, "other=abc", None),
    ],
)
def test_credential_sources(headers: dict[str, str], query: str, expected: str | None) -> None:
    assert credential_of(headers, query) == expected


def test_origin_rules() -> None:
    auth = Auth(Settings(allowed_origins="https://app.example.com"))
    assert auth.origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000")  # the page's own
    assert auth.origin_allowed("https://app.example.com", "tts.example.com")
    assert not auth.origin_allowed("https://evil.example.com", "tts.example.com")
    assert Auth(Settings(allowed_origins="*")).origin_allowed("https://x.y", "a.b")


def test_non_loopback_bind_without_keys_refuses_to_start(piper_engine: Engine) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    with pytest.raises(ConfigError, match="--no-auth"):
        Runtime.build(Settings(host="0.0.0.0"), piper_engine)
    check_bind(Settings(host="0.0.0.0", auth=False), KeyStore())  # explicit: allowed
    check_bind(Settings(host="0.0.0.0"), KeyStore(inline=KEY))  # keys: allowed


def test_no_auth_flag_turns_the_check_off() -> None:
    from speakstream.cli import _settings_from, build_parser

    args = build_parser().parse_args(["serve", "--host", "0.0.0.0", "--no-auth"])
    settings = _settings_from(args)
    assert settings.auth is False
    check_bind(settings, KeyStore())  # starts (and warns)
    assert _settings_from(build_parser().parse_args(["serve"])).auth is True


def test_non_loopback_bind_refusal_from_the_command_line() -> None:
    command = [
        sys.executable,
        "-m",
        "speakstream",
        "serve",
        "--host",
        "0.0.0.0",
        "--engine",
        "fake",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "--no-auth" in done.stderr


# --- against a server ------------------------------------------------------------------------


def _http(method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b"") -> Any:
    request = urllib.request.Request(url, data=body or None, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def http(
    method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> Any:
    return await asyncio.to_thread(_http, method, url, headers, body)


async def refused(url: str, **connect: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(url, **connect):
            pass
    response = info.value.response
    return response.status_code, json.loads(response.body or b"{}")


async def accepted(url: str, **connect: Any) -> dict[str, Any]:
    async with websockets.connect(url, **connect) as ws:
        ready: dict[str, Any] = json.loads(await ws.recv())
    assert ready["type"] == "ready"
    return ready


async def test_every_auth_path(piper_engine: Engine) -> None:
    async with running_server(
        piper_engine,
        Settings(log_level="warning", api_keys=f"alice:{KEY}", token_secret="server-secret"),
    ) as srv:
        url = srv.stream_url
        status, body = await refused(url)  # no key
        assert status == 401 and body["type"] == "error" and body["code"] == "unauthorized"
        status, body = await refused(url, additional_headers={"Authorization": "Bearer wrong"})
        assert (status, body["code"]) == (401, "unauthorized")
        status, _ = await refused(f"{url}?api_key=wrong")
        assert status == 401
        # good key: each place a key may come from
        await accepted(url, additional_headers={"Authorization": f"Bearer {KEY}"})
        await accepted(url, additional_headers={"Authorization": f"Token {KEY}"})
        await accepted(url, additional_headers={"xi-api-key": KEY})
        await accepted(url, additional_headers={"X-API-Key": KEY})
        await accepted(f"{url}?api_key={KEY}")
        # tokens: minted with a key, accepted in the query string
        base = srv.url.replace("ws://", "http://")
        status, body = await http("POST", f"{base}/v1/tokens")
        assert (status, body["code"]) == (401, "unauthorized")
        status, body = await http(
            "POST", f"{base}/v1/tokens", {"Authorization": f"Bearer {KEY}"}, b'{"ttl_s": 30}'
        )
        assert status == 200 and body["key_id"] == "alice" and body["expires_in_s"] == 30
        ready = await accepted(f"{url}?token={body['token']}")
        assert ready["request_id"]
        status, _ = await http(  # a token cannot mint a token
            "POST", f"{base}/v1/tokens", {"Authorization": f"Bearer {body['token']}"}
        )
        assert status == 401
        expired = srv.runtime.auth.signer.issue("alice", 1, now_s=0.0)
        status, body = await refused(f"{url}?token={expired}")
        assert (status, body["code"]) == (401, "unauthorized")
        forged = TokenSigner("another-secret").issue("alice", 600, now_s=1e12)
        status, _ = await refused(f"{url}?token={forged}")
        assert status == 401
        # the open paths need no key
        status, body = await http("GET", f"{base}/healthz")
        assert status == 200 and body["auth_required"] is True
        status, _ = await http("GET", f"{base}/readyz")
        assert status == 200
        refusals = srv.runtime.metrics.render().decode()
        assert (
            'speakstream_refused_connections_total{endpoint="/v1/stream",reason="unauthorized"} 5.0'
            in refusals
        )


async def test_origin_allowlist(piper_engine: Engine) -> None:
    async with running_server(
        piper_engine, Settings(log_level="warning", allowed_origins="https://app.example.com")
    ) as srv:
        url = srv.stream_url
        page = f"http://127.0.0.1:{srv.port}"
        await accepted(url, origin=page)  # the page's own origin
        await accepted(url, origin="https://app.example.com")  # allowed
        await accepted(url)  # no Origin: not a browser
        status, body = await refused(url, origin="https://evil.example.com")
        assert (status, body["code"]) == (403, "forbidden_origin")


async def test_per_key_connection_limit(piper_engine: Engine) -> None:
    async with running_server(
        piper_engine,
        Settings(log_level="warning", api_keys=f"alice:{KEY},bob:{OTHER_KEY}"),
        max_connections_per_key=2,
    ) as srv:
        url = srv.stream_url
        alice = {"additional_headers": {"Authorization": f"Bearer {KEY}"}}
        async with websockets.connect(url, **alice) as one, websockets.connect(url, **alice) as two:
            await one.recv()
            await two.recv()
            status, body = await refused(url, **alice)
            assert (status, body["code"]) == (429, "too_many_connections")
            await accepted(url, additional_headers={"Authorization": f"Bearer {OTHER_KEY}"})
        await accepted(url, **alice)  # released when the others closed


async def test_no_keys_on_loopback_is_open(piper_server: Any) -> None:
    ready = await accepted(piper_server.stream_url, additional_headers={"X-Request-Id": "req-42"})
    assert ready["request_id"] == "req-42"


async def test_sighup_rereads_the_key_file(piper_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"alice:{KEY}\n")
    settings = Settings(log_level="warning", api_keys_file=str(path))
    async with running_server(piper_engine, settings) as srv:
        # the server handles SIGHUP itself (else this test would kill the test run)
        assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_DFL, None)
        await accepted(srv.stream_url, additional_headers={"X-API-Key": KEY})
        path.write_text(f"bob:{OTHER_KEY}\n")  # rotate
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(lambda: srv.runtime.auth.keys.lookup(OTHER_KEY) == "bob")
        status, _ = await refused(srv.stream_url, additional_headers={"X-API-Key": KEY})
        assert status == 401
        await accepted(srv.stream_url, additional_headers={"X-API-Key": OTHER_KEY})
    assert signal.getsignal(signal.SIGHUP) in (signal.SIG_DFL, None)  # handed back
