from __future__ import annotations

import pytest

from speakstream.protocol.errors import ERRORS, CloseCode, ErrorCode, ProtocolError
from speakstream.protocol.frames import (
    HEADER_SIZE,
    AudioFrameHeader,
    FrameError,
    pack_audio_frame,
    unpack_audio_frame,
)
from speakstream.protocol.messages import (
    CancelMessage,
    PingMessage,
    StartMessage,
    TextMessage,
    parse_client_message,
)
from speakstream.protocol.server_messages import ErrorMessage, Pong, encode_json


def test_audio_frame_round_trip() -> None:
    header = AudioFrameHeader(stream=7, segment=3, frame=4_000_000_000)
    data = pack_audio_frame(header, b"\x01\x02")
    assert len(data) == HEADER_SIZE + 2 == 18
    assert data[:2] == b"SS" and data[2] == 1
    assert unpack_audio_frame(data) == (header, b"\x01\x02")


@pytest.mark.parametrize("data", [b"SS", b"XX" + bytes(14), b"SS\x02" + bytes(13)])
def test_bad_frames_are_rejected(data: bytes) -> None:
    with pytest.raises(FrameError):
        unpack_audio_frame(data)


def test_parse_messages() -> None:
    assert parse_client_message('{"type":"text","text":"hi"}') == TextMessage("default", "hi")
    assert parse_client_message('{"type":"ping"}') == PingMessage(None)
    assert parse_client_message('{"type":"cancel","context":"a","played_ms":120}') == CancelMessage(
        "a", 120.0
    )
    start = parse_client_message('{"type":"start","context":"c","voice":"v","speed":1.25}')
    assert start == StartMessage("c", {"voice": "v", "speed": 1.25})


def test_deeply_nested_json_is_an_error_not_a_crash() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message("[" * 100_000 + "]" * 100_000)
    assert info.value.code in (ErrorCode.INVALID_JSON, ErrorCode.INVALID_MESSAGE)


def test_context_ids_are_bounded() -> None:
    with pytest.raises(ProtocolError, match="longer than 64"):
        parse_client_message('{"type":"text","text":"x","context":"' + "c" * 65 + '"}')


def test_error_message_shape() -> None:
    message = ErrorMessage.of(ProtocolError(ErrorCode.TOO_MANY_CONNECTIONS, "busy")).to_dict()
    assert message == {
        "type": "error",
        "code": "too_many_connections",
        "message": "busy",
        "retryable": True,
    }
    assert not ERRORS[ErrorCode.INVALID_JSON].retryable


def test_every_code_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "protocol.md").read_text()
    for code in ErrorCode:
        assert f"`{code.value}`" in doc, code
    for close in CloseCode:
        assert f"`{close.value}`" in doc, close


@pytest.mark.parametrize(
    "raw",
    [
        '{"type":"text","text":"a\\ud800b"}',  # lone surrogates: text, context, ping id
        '{"type":"text","text":"x","context":"\\udfff"}',
        '{"type":"ping","id":"\\ud800"}',
        '{"type":"start","voice":"\\ud83d"}',
    ],
)
def test_lone_surrogates_are_invalid_messages(raw: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(raw)
    assert info.value.code is ErrorCode.INVALID_MESSAGE
    assert "surrogate" in info.value.message


def test_integers_past_the_digit_limit_are_invalid_json() -> None:
    for field in ("id", "x"):
        with pytest.raises(ProtocolError) as info:
            parse_client_message('{"type":"ping","' + field + '":' + "9" * 5000 + "}")
        assert info.value.code is ErrorCode.INVALID_JSON


@pytest.mark.parametrize(
    "raw",
    [
        '{"type":"ping","extra":1}',  # ping takes only an id
        '{"type":"start","voice":null}',  # null is not a value: leave the field out
        '{"type":"start","speed":null}',
        '{"type":"cancel","played_ms":null}',
        '{"type":"text","text":""}',  # a text holds at least one character
        '{"type":"ping","id":true}',
        '{"type":"ping","id":' + str(2**70) + "}",
    ],
)
def test_strict_fields(raw: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(raw)
    assert info.value.code is ErrorCode.INVALID_MESSAGE


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"type":"start","bit_rate_kbps":5}', "between 6 and 320"),
        ('{"type":"start","bit_rate_kbps":321}', "between 6 and 320"),
        ('{"type":"start","bit_rate_kbps":64.5}', "must be an integer"),
        ('{"type":"start","bit_rate_kbps":"64"}', "must be an integer"),
        ('{"type":"start","bit_rate_kbps":true}', "must be an integer"),
    ],
)
def test_bit_rate_is_an_integer_within_what_any_codec_takes(raw: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as info:
        parse_client_message(raw)
    assert info.value.code is ErrorCode.INVALID_MESSAGE


def test_bit_rate_is_a_start_option() -> None:
    for kbps in (6, 128, 320):
        raw = f'{{"type":"start","encoding":"mp3","bit_rate_kbps":{kbps}}}'
        assert parse_client_message(raw) == StartMessage(
            "default", {"encoding": "mp3", "bit_rate_kbps": kbps}
        )


def test_one_encoder_survives_a_lone_surrogate() -> None:
    # whatever a string holds, the encoder gives valid UTF-8 JSON (escaped if need be)
    text = encode_json(Pong("a\ud800").to_dict())
    text.encode("utf-8")
    assert text == '{"type":"pong","id":"a\\ud800"}'
    assert Pong("é").to_json() == '{"type":"pong","id":"é"}'
