"""Coverage-guided fuzzing (atheris / libFuzzer) of the message parser and the session.

Run by ``tests/test_fuzz_protocol.py`` in a subprocess for a bounded time (libFuzzer ends
the process). Any input: decoded as UTF-8 (invalid bytes as surrogates, which a JSON
string can also carry), parsed, and fed to a session: a ``ProtocolError`` is an answer;
any other exception is a crash, and so is an output the session must never make for
input alone (audio, or a close other than the error limit's).
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from speakstream.protocol.errors import ProtocolError
    from speakstream.protocol.messages import parse_client_message
    from speakstream.protocol.outputs import Audio, SessionConfig
    from speakstream.protocol.session import Session

CONFIG = SessionConfig(voices={"v": 16000}, default_voice="v", encodings=frozenset({"pcm_s16le"}))


def one_input(data: bytes) -> None:
    text = data.decode("utf-8", errors="surrogateescape")
    with contextlib.suppress(ProtocolError):
        parse_client_message(text)
    session = Session(CONFIG)
    for i, frame in enumerate(text.split("\n")[:8]):
        outputs = session.receive_text_frame(frame, float(i))
        assert not any(isinstance(o, Audio) for o in outputs)
    session.close()


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
