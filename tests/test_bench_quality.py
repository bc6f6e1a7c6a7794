"""The quality benchmark: the paragraphs, the recognizer's model, and one quick run end to
end (a real server process, real Piper, real Whisper)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from speakstream.bench.playback import Playback, word_lags_ms
from speakstream.bench.quality import (
    VARIANTS,
    load_paragraphs,
    main,
    markdown_table,
    run_quality,
    whisper_model_path,
    write_results,
)


def test_the_paragraphs_are_ten_and_varied() -> None:
    paragraphs = load_paragraphs()
    assert len(paragraphs) == 10
    assert 550 <= sum(len(p.split()) for p in paragraphs) <= 600
    joined = " ".join(paragraphs)
    for feature in ("?", "!", '"', ":", ";", "$", "%"):
        assert feature in joined, feature
    assert any(ch.isdigit() for ch in joined)


def test_the_whisper_model_is_installed_not_downloaded() -> None:
    assert (whisper_model_path() / "model.bin").is_file()


@pytest.fixture(scope="module")
def quick_results() -> dict[str, Any]:
    return run_quality(quick=True)


@pytest.mark.timeout(600)
def test_a_quick_run_measures_every_mode_against_the_in_process_reference(
    quick_results: dict[str, Any],
) -> None:
    results = quick_results
    names = [v.name for v in VARIANTS]
    # the controls: the same arrivals with each segment synthesized alone
    assert {"llm_150ms_alone", "typist_80ms_alone", "typist_80ms_each_word"} <= set(names)
    assert results["quick"] is True
    assert results["paragraphs"] == 1
    assert len(results["machine"]["loadavg_at_start"]) == 3
    assert set(results["summary"]) == {"reference", "floor", *names}
    assert len(results["per_paragraph"]) == len(names) + 2

    reference, floor = results["summary"]["reference"], results["summary"]["floor"]
    assert reference["wer"] < 0.3
    assert math.isfinite(floor["mcd_db"]) and floor["mcd_db"] > 0
    assert math.isfinite(floor["f0_rmse_semitones"]) and floor["f0_rmse_semitones"] > 0
    assert 0.8 < floor["duration_ratio"] < 1.25
    for name in names:
        row = results["summary"][name]
        assert row["segments_per_paragraph"] >= 1
        assert row["in_sentence_cuts_per_100_words"] >= 0
        assert row["ttfa_ms"]["p50"] > 0
        assert math.isfinite(row["mcd_db"]) and row["mcd_db"] > 0
        assert 0.5 < row["duration_ratio"] < 2.0
        assert 0 <= row["wer"] < 1.0
        assert row["engine_ms_per_audio_s"] > 0
        # every word was heard after it was sent (alignment covers the whole text)
        assert row["word_lag_ms"]["p50"] > 0 and row["gaps_ms_per_paragraph"] >= 0
    for row in results["per_paragraph"][2:]:
        assert len(row["word_lags_ms"]) == row["words"]
    whole = results["summary"]["whole"]
    assert whole["wer"] < 0.3
    for row in results["per_paragraph"]:
        assert row["transcript"].strip()


@pytest.mark.timeout(600)
def test_results_file_and_table_of_a_quick_run(
    quick_results: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_results(quick_results, tmp_path / "results" / "quality.json")
    assert json.loads(path.read_text(encoding="utf-8")) == quick_results
    table = markdown_table(quick_results)
    lines = table.splitlines()
    assert len(lines) == 2 + len(VARIANTS)
    assert all(line.count("|") == 11 for line in lines)
    assert "floor" in lines[0] and "TTFA" in lines[0]
    assert [line.split("|")[1].strip() for line in lines[2:]] == [v.label for v in VARIANTS]
    capsys.readouterr()  # what writing the results printed
    assert main(["--table", str(path)]) == 0
    assert capsys.readouterr().out.strip() == table


def test_playback_places_chunks_as_a_real_time_listener_hears_them() -> None:
    # 1 s of audio at t=10, the next 0.5 s arrives at 10.4 (in time), the last 0.5 s at
    # 12.0 (0.5 s after the listener ran out at 11.5)
    playback = Playback([(10.0, 1000.0), (10.4, 500.0), (12.0, 500.0)])
    assert playback.at_s(0.0) == pytest.approx(10.0)
    assert playback.at_s(1200.0) == pytest.approx(11.2)
    assert playback.at_s(1600.0) == pytest.approx(12.1)
    assert playback.at_s(2100.0) is None
    assert playback.gaps_ms == pytest.approx(500.0)
    words = [
        {"end": 5, "start_ms": 0.0},  # sent at 9.9
        {"end": 11, "start_ms": 1500.0},  # sent at 11.0, heard at 12.0
        {"end": 99, "start_ms": 10.0},  # never sent: no lag
    ]
    lags = word_lags_ms(words, [(5, 9.9), (11, 11.0)], playback)
    assert lags == [pytest.approx(100.0), pytest.approx(1000.0)]
