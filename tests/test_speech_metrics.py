"""speech_metrics on synthetic signals with known answers, and WER on known strings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from speakstream.bench.speech_metrics import (
    compare_speech,
    dtw_path,
    euclidean_costs,
    mel_cepstral_distortion_db,
    mfcc,
    normalize_words,
    speech_duration_s,
    word_edits,
    word_error_rate,
)

RATE_HZ = 16_000
NOTES_HZ = [110.0, 165.0, 220.0, 147.0, 196.0, 262.0]


def harmonic_tone(f0_hz: float, seconds: float) -> np.ndarray:
    """A voiced-like sound: seven harmonics of ``f0_hz`` falling as 1/k."""
    t = np.arange(int(seconds * RATE_HZ)) / RATE_HZ
    return np.asarray(sum(np.sin(2 * np.pi * f0_hz * k * t) / k for k in range(1, 8)))


def melody(notes_hz: list[float], note_s: float) -> np.ndarray:
    return np.concatenate([harmonic_tone(f, note_s) for f in notes_hz])


def test_mfcc_has_one_row_per_hop_and_the_asked_coefficients() -> None:
    cepstra = mfcc(harmonic_tone(120.0, 1.0), RATE_HZ, n_coefficients=13)
    assert cepstra.shape == (99, 13)  # 1 s, 25 ms frames every 10 ms
    assert np.isfinite(cepstra).all()


def test_identical_signals_have_zero_mcd_and_zero_f0_error() -> None:
    signal = melody(NOTES_HZ, 0.2)
    result = compare_speech(signal, signal.copy(), RATE_HZ)
    assert result.mcd_db == pytest.approx(0.0, abs=1e-6)
    assert result.f0_rmse_semitones == pytest.approx(0.0, abs=1e-6)
    assert result.voiced_pairs > 80
    assert result.duration_ratio == pytest.approx(1.0)


def test_a_tone_a_semitone_up_has_an_f0_rmse_of_one_semitone() -> None:
    low = harmonic_tone(120.0, 1.0)
    high = harmonic_tone(120.0 * 2 ** (1 / 12), 1.0)
    result = compare_speech(low, high, RATE_HZ)
    assert result.f0_rmse_semitones == pytest.approx(1.0, abs=0.05)
    assert result.mcd_db > 1.0  # a different spectrum is a distance


def test_dtw_keeps_the_mcd_of_a_time_stretched_copy_small() -> None:
    original = melody(NOTES_HZ, 0.2)
    stretched = melody(NOTES_HZ, 0.3)
    reordered = melody(NOTES_HZ[::-1], 0.2)
    aligned = compare_speech(original, stretched, RATE_HZ)
    other = compare_speech(original, reordered, RATE_HZ)
    a, b = mfcc(original, RATE_HZ)[:, 1:], mfcc(stretched, RATE_HZ)[:, 1:]
    frame_by_frame = np.arange(min(len(a), len(b)))
    unaligned_db = mel_cepstral_distortion_db(a, b, frame_by_frame, frame_by_frame)
    assert aligned.mcd_db < 0.15 * unaligned_db
    assert aligned.mcd_db < 0.15 * other.mcd_db
    assert aligned.f0_rmse_semitones < 0.5
    assert aligned.duration_ratio == pytest.approx(1.5, abs=0.02)


def test_dtw_path_follows_the_cheap_cells_from_corner_to_corner() -> None:
    costs = np.array(
        [
            [0.0, 9.0, 9.0],
            [0.0, 9.0, 9.0],
            [9.0, 0.0, 9.0],
            [9.0, 9.0, 0.0],
        ]
    )
    rows, cols = dtw_path(costs)
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 0), (1, 0), (2, 1), (3, 2)]


def test_dtw_path_is_monotonic_and_spans_both_sequences() -> None:
    rng = np.random.default_rng(7)
    rows, cols = dtw_path(euclidean_costs(rng.normal(size=(40, 5)), rng.normal(size=(55, 5))))
    assert (rows[0], cols[0], rows[-1], cols[-1]) == (0, 0, 39, 54)
    steps = np.stack([np.diff(rows), np.diff(cols)], axis=1)
    assert {tuple(s) for s in steps.tolist()} <= {(1, 0), (0, 1), (1, 1)}


def test_speech_duration_leaves_silence_out() -> None:
    silence = np.zeros(RATE_HZ)
    signal = np.concatenate([harmonic_tone(150.0, 1.0), silence, harmonic_tone(150.0, 0.5)])
    assert speech_duration_s(signal, RATE_HZ) == pytest.approx(1.5, abs=0.02)
    assert speech_duration_s(silence, RATE_HZ) == 0.0


def test_f0_rmse_is_nan_without_voiced_frames() -> None:
    rng = np.random.default_rng(1)
    noise = rng.normal(scale=0.1, size=RATE_HZ)
    result = compare_speech(noise, noise, RATE_HZ)
    assert math.isnan(result.f0_rmse_semitones)
    assert result.voiced_pairs == 0


def test_word_error_rate_of_known_strings() -> None:
    assert word_error_rate("the cat sat on the mat", "the cat sat on the mat") == 0.0
    # one substitution (sat -> sit), one deletion (the)
    assert word_error_rate("the cat sat on the mat", "the cat sit on mat") == pytest.approx(2 / 6)
    # one insertion
    assert word_error_rate("hello there", "hello out there") == pytest.approx(1 / 2)
    assert word_error_rate("hello", "") == 1.0
    assert word_edits(["a", "b"], ["b", "a"]) == 2


def test_word_error_rate_ignores_case_punctuation_and_how_numbers_are_written() -> None:
    assert (
        word_error_rate("Wait thirty seconds, then press it!", "wait 30 seconds then press it") == 0
    )
    assert word_error_rate("With tax at 8 percent, it's $43.46.", "with tax at 8%, its 43.46") == 0
    assert word_error_rate("one hundred and twelve steps", "112 steps") == 0
    assert word_error_rate("36,000 feet", "thirty-six thousand feet") == 0


def test_normalize_words_spells_numerals() -> None:
    assert normalize_words("Flight 482 at 1.5 km, in 2025.") == (
        "flight four hundred eighty two at one point five km in two thousand twenty five".split()
    )
    assert normalize_words("Can't STOP—won't!") == ["cant", "stop", "wont"]


def test_word_error_rate_needs_reference_words() -> None:
    with pytest.raises(ValueError):
        word_error_rate(" ... ", "something")
