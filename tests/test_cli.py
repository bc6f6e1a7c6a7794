"""The command-line tools, each run as a subprocess against a real server with Piper."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import sys
import wave
from pathlib import Path

import av
import pytest

from speakstream.engines import Engine
from tests.conftest import RunningServer, running_server

pytestmark = pytest.mark.timeout(180)

# Peak RSS of this process image: VmHWM (getrusage's ru_maxrss would carry over the
# peak of the forking test process across exec).
MEASURE_RSS = (
    "import re, sys\n"
    "from speakstream.cli import main\n"
    "code = main(sys.argv[2:])\n"
    "status = open('/proc/self/status').read()\n"
    "open(sys.argv[1], 'w').write(re.search(r'VmHWM:\\s+(\\d+)', status).group(1))\n"
    "sys.exit(code)\n"
)


async def cli(
    *args: str,
    stdin: bytes | None = None,
    timeout_s: float = 150,
    env: dict[str, str] | None = None,
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "speakstream",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout_s)
    finally:
        if proc.returncode is None:  # a hung command fails the test, it is not left running
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def reported_audio_s(stderr: str) -> float:
    match = re.search(r"([\d.]+) s of audio", stderr)
    assert match, stderr
    return float(match.group(1))


def decoded_s(path: Path) -> float:
    with av.open(io.BytesIO(path.read_bytes())) as container:
        stream = container.streams.audio[0]
        return sum(f.samples for f in container.decode(stream)) / stream.rate


@pytest.fixture
async def server(piper_engine: Engine) -> RunningServer:
    async with running_server(piper_engine) as srv:
        yield srv  # type: ignore[misc]


async def test_say_writes_a_wav_file_of_the_right_duration(
    server: RunningServer, tmp_path: Path
) -> None:
    out = tmp_path / "out.wav"
    code, _, err = await cli(
        "say", "Hello there, this is the command line.", "-o", str(out), "--url", server.stream_url
    )
    assert code == 0, err
    with wave.open(str(out)) as wav:  # sizes fixed up: the stdlib reader accepts it
        seconds = wav.getnframes() / wav.getframerate()
        assert wav.getframerate() == 22050 and wav.getnchannels() == 1
    assert seconds == pytest.approx(reported_audio_s(err), rel=0.02)
    assert not (tmp_path / "out.wav.part").exists()


@pytest.mark.parametrize(
    ("name", "extra"), [("out.ogg", []), ("out.mp3", []), ("x.bin", ["--format", "opus"])]
)
async def test_say_other_formats(
    server: RunningServer, tmp_path: Path, name: str, extra: list[str]
) -> None:
    out = tmp_path / name
    text = "A longer sentence, so that the codec delay is small against the whole. And one more."
    code, _, err = await cli("say", text, "-o", str(out), "--url", server.stream_url, *extra)
    assert code == 0, err
    assert decoded_s(out) == pytest.approx(reported_audio_s(err), rel=0.02)


async def test_stream_a_20000_character_text_with_flat_memory(
    server: RunningServer, tmp_path: Path
) -> None:
    sentence = "The quick brown fox jumps over the lazy dog. "
    big = tmp_path / "big.txt"
    big.write_text((sentence * (20_000 // len(sentence) + 1))[:20_000])
    small = tmp_path / "small.txt"
    small.write_text((sentence * 50)[:2_000])
    rss_kb = {}
    for source in (small, big):
        out = tmp_path / f"{source.stem}.ulaw"
        rss_file = tmp_path / f"{source.stem}.rss"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            MEASURE_RSS,
            str(rss_file),
            "stream",
            str(source),
            "-o",
            str(out),
            "--speed",
            "4",
            "--url",
            server.stream_url,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 170)
        assert proc.returncode == 0, err.decode()
        assert "sent 20000 chars" in err.decode() or source is small  # progress line
        seconds = out.stat().st_size / 8000  # mu-law: one byte per sample at 8 kHz
        assert seconds == pytest.approx(reported_audio_s(err.decode()), rel=0.02)
        rss_kb[source.stem] = int(rss_file.read_text())
    # ten times the text, about the same peak memory
    assert rss_kb["big"] - rss_kb["small"] < 20_000, rss_kb


async def test_stream_reads_standard_input(server: RunningServer, tmp_path: Path) -> None:
    out = tmp_path / "piped.wav"
    code, _, err = await cli(
        "stream",
        "-",
        "-o",
        str(out),
        "--quiet",
        "--url",
        server.stream_url,
        stdin=b"Piped in. Spoken out.",
    )
    assert code == 0, err
    assert decoded_s(out) == pytest.approx(reported_audio_s(err), rel=0.02)


async def test_type_reports_first_audio_and_segments(server: RunningServer, tmp_path: Path) -> None:
    out = tmp_path / "typed.wav"
    code, _, err = await cli(
        "type",
        "Hello there, typing is fun.",
        "--cps",
        "40",
        "-o",
        str(out),
        "--url",
        server.stream_url,
    )
    assert code == 0, err
    assert "first audio" in err and "segment 0: 'Hello '" in err
    assert re.search(r"time to first audio: \d+ ms", err)
    assert decoded_s(out) > 0.5
    code, _, err = await cli(
        "type", "Tokens like an LLM would send them.", "--tps", "30", "--url", server.stream_url
    )
    assert code == 0 and "LLM at 30 tokens/s" in err


async def test_voices_lists_the_bundled_voice(server: RunningServer) -> None:
    code, out, _ = await cli("voices", "--url", server.stream_url)
    assert code == 0
    assert "en_US-joe-medium" in out and "opus" in out


async def test_errors_say_what_to_do(server: RunningServer, tmp_path: Path) -> None:
    out = str(tmp_path / "x.wav")
    code, _, err = await cli("say", "Hi", "-o", out, "--url", "ws://127.0.0.1:9/v1/stream")
    assert code == 1 and "python -m speakstream serve" in err
    code, _, err = await cli("say", "Hi", "-o", out, "--url", server.url + "/nothing-here")
    assert code == 1 and "no speakstream endpoint" in err and "/v1/stream" in err
    code, _, err = await cli(
        "say", "Hi", "-o", out, "--voice", "nobody", "--url", server.stream_url
    )
    assert code == 1 and "unknown_voice" in err and "en_US-joe-medium" in err
    assert not Path(out).exists()  # nothing half-written
    code, _, err = await cli(
        "say", "Hi", "-o", str(tmp_path / "x.vorbis"), "--url", server.stream_url
    )
    assert code == 1 and "cannot tell the format" in err
    code, _, err = await cli(
        "say",
        "Hi",
        "-o",
        str(tmp_path / "x.ogg"),
        "--format",
        "opus",
        "--rate",
        "22050",
        "--url",
        server.stream_url,
    )
    assert code == 1 and "unsupported_sample_rate" in err
    code, _, err = await cli(
        "stream", str(tmp_path / "missing.txt"), "-o", out, "--url", server.stream_url
    )
    assert code == 1 and "no such file" in err


async def test_sync_wrapper(server: RunningServer, tmp_path: Path) -> None:
    from speakstream.client.sync import save, speak

    def run() -> None:
        speech = speak("Synchronous and simple.", url=server.stream_url)
        assert speech.encoding == "pcm_s16le" and speech.sample_rate_hz == 22050
        assert len(speech.audio) / 2 / 22050 == pytest.approx(
            speech.metrics["audio_ms"] / 1000, rel=0.01
        )
        saved = save("Into a file.", tmp_path / "sync.ogg", url=server.stream_url)
        assert saved.encoding == "opus" and (tmp_path / "sync.ogg").stat().st_size > 0

    await asyncio.to_thread(run)  # the server runs in this test's event loop


async def test_top_level_connect_is_an_async_context_manager(server: RunningServer) -> None:
    import speakstream

    async with speakstream.connect(server.stream_url) as conn:
        assert conn.ready["type"] == "ready"


# --- regressions (issue 14) -------------------------------------------------------------------


def no_files_but(tmp_path: Path, *names: str) -> list[str]:
    """What the command left in tmp_path, beyond the inputs ``names``."""
    return sorted(p.name for p in tmp_path.iterdir() if p.name not in names)


@pytest.mark.parametrize(
    "content",
    ["Café crème, s'il vous plaît. ".encode("latin-1") * 40, bytes(range(256)) * 8],
    ids=["latin-1", "binary"],
)
async def test_stream_refuses_a_file_that_is_not_utf8(
    server: RunningServer, tmp_path: Path, content: bytes
) -> None:
    source = tmp_path / "story.txt"
    source.write_bytes(content)
    code, _, err = await cli(
        "stream",
        str(source),
        "-o",
        str(tmp_path / "out.wav"),
        "--url",
        server.stream_url,
        timeout_s=60,
    )
    assert code == 1, err
    assert "story.txt" in err and ("UTF-8" in err or "binary" in err), err
    assert "Traceback" not in err
    assert no_files_but(tmp_path, "story.txt") == []


async def test_stream_refuses_a_file_that_turns_bad_after_a_good_start(
    server: RunningServer, tmp_path: Path
) -> None:
    source = tmp_path / "story.txt"
    source.write_bytes(b"A fine start. " * 200 + "Caf\xe9.".encode("latin-1"))
    code, _, err = await cli(
        "stream",
        str(source),
        "-o",
        str(tmp_path / "out.ogg"),
        "--quiet",
        "--url",
        server.stream_url,
        timeout_s=60,
    )
    assert code == 1 and "story.txt is not UTF-8" in err and "0xe9" in err, err
    assert no_files_but(tmp_path, "story.txt") == []


@pytest.mark.parametrize("text", ["", "   \n\t "])
async def test_say_nothing_is_an_error_and_writes_no_file(
    server: RunningServer, tmp_path: Path, text: str
) -> None:
    code, _, err = await cli("say", text, "-o", str(tmp_path / "x.wav"), "--url", server.stream_url)
    assert code == 1 and "nothing to say" in err and "Traceback" not in err, err
    assert no_files_but(tmp_path) == []


async def test_stream_an_empty_file_is_an_error_and_writes_no_file(
    server: RunningServer, tmp_path: Path
) -> None:
    (tmp_path / "empty.txt").write_text("\n\n  \n")
    code, _, err = await cli(
        "stream",
        str(tmp_path / "empty.txt"),
        "-o",
        str(tmp_path / "x.mp3"),
        "--url",
        server.stream_url,
    )
    assert code == 1 and "nothing to say" in err and "empty.txt" in err, err
    assert no_files_but(tmp_path, "empty.txt") == []


async def test_stream_a_directory_says_it_is_a_directory(
    server: RunningServer, tmp_path: Path
) -> None:
    code, _, err = await cli(
        "stream", str(tmp_path), "-o", str(tmp_path / "x.wav"), "--url", server.stream_url
    )
    assert code == 1 and "is a directory" in err and "no such file" not in err, err


async def _stream_until_audio(server: RunningServer, tmp_path: Path) -> asyncio.subprocess.Process:
    """A long ``stream`` run, returned once its partial file holds audio."""
    source = tmp_path / "long.txt"
    source.write_text("The quick brown fox jumps over the lazy dog. " * 400)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "speakstream",
        "stream",
        str(source),
        "-o",
        str(tmp_path / "long.wav"),
        "--url",
        server.stream_url,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    partial = tmp_path / "long.wav.part"
    async with asyncio.timeout(60):
        while not (partial.exists() and partial.stat().st_size > 44):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return proc


async def test_sigterm_removes_the_partial_file(server: RunningServer, tmp_path: Path) -> None:
    proc = await _stream_until_audio(server, tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()
    assert no_files_but(tmp_path, "long.txt") == []


async def test_ctrl_c_ends_the_progress_line_and_removes_the_partial_file(
    server: RunningServer, tmp_path: Path
) -> None:
    proc = await _stream_until_audio(server, tmp_path)
    proc.send_signal(signal.SIGINT)
    _, raw = await asyncio.wait_for(proc.communicate(), 60)
    err = raw.decode()
    assert proc.returncode == 130, err
    assert "sent " in err  # the progress line was showing
    last_progress = err.rsplit("\r", 1)[-1]
    assert "\n" in last_progress and last_progress.endswith("interrupted\n"), repr(err[-200:])
    assert no_files_but(tmp_path, "long.txt") == []


async def test_a_format_that_contradicts_the_suffix_is_refused(
    server: RunningServer, tmp_path: Path
) -> None:
    code, _, err = await cli(
        "say",
        "Hello.",
        "--format",
        "opus",
        "-o",
        str(tmp_path / "x.mp3"),
        "--url",
        server.stream_url,
    )
    assert code == 1 and "x.mp3" in err and "opus" in err, err
    assert no_files_but(tmp_path) == []


@pytest.mark.parametrize("name", ["book.mp3", "book.ogg"])
async def test_stream_progress_counts_compressed_audio(
    server: RunningServer, tmp_path: Path, name: str
) -> None:
    source = tmp_path / "book.txt"
    source.write_text("Compressed audio has a duration too. " * 6)
    code, _, err = await cli(
        "stream", str(source), "-o", str(tmp_path / name), "--url", server.stream_url
    )
    assert code == 0, err
    shown = [float(m) for m in re.findall(r"([\d.]+) s audio", err)]
    assert shown and shown[-1] == pytest.approx(reported_audio_s(err), rel=0.1), err


def test_the_closing_line_survives_null_metrics(tmp_path: Path) -> None:
    from speakstream.client.cli import AudioSink, describe

    sink = AudioSink(None, "pcm_s16le", 22050, play=False)
    metrics = {"ttfa_ms": None, "rtf": None, "audio_ms": None, "first_segment_ms": None}
    line = describe(metrics, sink, None)
    assert "0.00 s of audio" in line and "n/a" in line


async def test_serve_help_shows_each_default() -> None:
    from speakstream.config import KEYS

    code, out, _ = await cli("serve", "--help")
    assert code == 0
    options = " ".join(out.split()).split(" settings (", 1)[1]
    starts = [  # where each setting's entry begins, in declaration order
        re.search(rf" {re.escape(key.flag)}[ ,]", options).start()  # type: ignore[union-attr]
        for key in KEYS
    ]
    for key, start, end in zip(KEYS, starts, [*starts[1:], len(options)], strict=True):
        assert "(default: " in options[start:end], (key.flag, options[start:end])


async def test_sync_save_writes_real_wav_sizes(server: RunningServer, tmp_path: Path) -> None:
    from speakstream.client.sync import save

    path = tmp_path / "sync.wav"
    speech = await asyncio.to_thread(save, "Sizes in the header.", path, url=server.stream_url)
    with wave.open(str(path)) as wav:
        seconds = wav.getnframes() / wav.getframerate()
    assert seconds == pytest.approx(speech.metrics["audio_ms"] / 1000, rel=0.01)


async def test_sync_honours_speakstream_url(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from speakstream.client.sync import speak

    monkeypatch.setenv("SPEAKSTREAM_URL", server.stream_url)
    speech = await asyncio.to_thread(speak, "From the environment.")
    assert speech.metrics["audio_ms"] > 0
    # the command line reads the same variable
    env = dict(os.environ)
    code, out, _ = await cli("voices", env=env)
    assert code == 0 and "en_US-joe-medium" in out


def test_type_file_must_be_utf8_text(tmp_path: Path) -> None:
    from speakstream.client.text import TextError, read_text_file

    latin = tmp_path / "answer.txt"
    latin.write_bytes("Voilà.".encode("latin-1"))
    with pytest.raises(TextError, match=r"answer.txt is not UTF-8 text \(byte 0xe0 after 4"):
        read_text_file(latin)
    with pytest.raises(TextError, match="is a directory"):
        read_text_file(tmp_path)
