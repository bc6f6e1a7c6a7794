"""Distances between two renditions of the same speech, and a word error rate.

Pure functions on mono float samples (any scale; ``pcm_s16le`` divided by 32768 is the
usual one) at one sample rate, and on strings:

* ``mfcc``: mel-frequency cepstra (Hann window, ``frame_ms`` frames every ``hop_ms``,
  ``n_mels`` triangular mel bands up to Nyquist, natural log of the band amplitude, i.e.
  half the log power, the convention MCD's constant assumes, then an orthonormal DCT-II),
  one row per frame, column 0 is the energy term c0;
* ``dtw_path``: the minimum-cost monotonic alignment of two sequences of frames given
  their pairwise cost matrix (steps (1,0), (0,1), (1,1));
* ``compare_speech``: aligns ``test`` to ``reference`` by DTW on their cepstra (c0 left
  out, so loudness does not count), then gives
  - the mel-cepstral distortion in dB, ``10/ln 10 * sqrt(2 * sum_d (a_d - b_d)^2)``
    averaged over the aligned frame pairs (MFCC-based, so its scale is comparable
    between runs of this code, not with MCD figures from SPTK mel-cepstra);
  - the F0 RMSE in semitones over the aligned pairs voiced in both, F0 from Praat's
    autocorrelation pitch tracker (``praat-parselmouth``), 75-300 Hz;
  - the ratio of their speech durations (``speech_duration_s``: frames within
    ``threshold_db`` of the loudest frame; pauses and silence do not count);
* ``normalize_words`` and ``word_error_rate``: lower case, punctuation out, numerals
  spelled as words ("30" and "thirty" match, "8%" and "8 percent" match), then the word
  edit distance over the number of reference words.

Nothing here does I/O or keeps state; ``parselmouth`` is imported on first use.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.intp]

MCD_SCALE_DB = 10.0 / math.log(10.0) * math.sqrt(2.0)
_LOG_FLOOR = 1e-10  # band power below this (about -100 dB of full scale) counts as this


def _as_samples(samples: NDArray[np.floating] | NDArray[np.integer]) -> FloatArray:
    values: FloatArray = np.asarray(samples, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("no samples")
    return values


def _frame_geometry(sample_rate_hz: int, frame_ms: float, hop_ms: float) -> tuple[int, int]:
    frame = max(1, round(sample_rate_hz * frame_ms / 1000.0))
    hop = max(1, round(sample_rate_hz * hop_ms / 1000.0))
    return frame, hop


def _frames(values: FloatArray, frame: int, hop: int) -> FloatArray:
    count = 1 + max(0, math.ceil((values.size - frame) / hop))
    padded = np.zeros((count - 1) * hop + frame)
    padded[: values.size] = values
    index = np.arange(frame)[None, :] + hop * np.arange(count)[:, None]
    frames: FloatArray = padded[index]
    return frames


def frame_times_s(
    frame_count: int, sample_rate_hz: int, frame_ms: float = 25.0, hop_ms: float = 10.0
) -> FloatArray:
    """The centre time of each ``mfcc`` frame."""
    frame, hop = _frame_geometry(sample_rate_hz, frame_ms, hop_ms)
    return (np.arange(frame_count) * hop + frame / 2.0) / sample_rate_hz


def _hz_to_mel(hz: FloatArray | float) -> FloatArray:
    return np.asarray(2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0), dtype=np.float64)


def _mel_to_hz(mel: FloatArray) -> FloatArray:
    return np.asarray(700.0 * (10.0 ** (mel / 2595.0) - 1.0), dtype=np.float64)


def _mel_filterbank(sample_rate_hz: int, n_fft: int, n_mels: int) -> FloatArray:
    edges_hz = _mel_to_hz(np.linspace(0.0, float(_hz_to_mel(sample_rate_hz / 2.0)), n_mels + 2))
    bins_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate_hz)
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bins_hz[None, :] - lower) / (centre - lower)
    falling = (upper - bins_hz[None, :]) / (upper - centre)
    return np.asarray(np.maximum(0.0, np.minimum(rising, falling)), dtype=np.float64)


def _dct_matrix(n_in: int, n_out: int) -> FloatArray:
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * math.sqrt(2.0 / n_in)
    basis[0] /= math.sqrt(2.0)
    return np.asarray(basis, dtype=np.float64)


def mfcc(
    samples: NDArray[np.floating] | NDArray[np.integer],
    sample_rate_hz: int,
    *,
    n_coefficients: int = 25,
    n_mels: int = 40,
    frame_ms: float = 25.0,
    hop_ms: float = 10.0,
) -> FloatArray:
    """Mel-frequency cepstra, shape (frames, ``n_coefficients``), c0 in column 0."""
    values = _as_samples(samples)
    frame, hop = _frame_geometry(sample_rate_hz, frame_ms, hop_ms)
    n_fft = 1 << (frame - 1).bit_length()
    frames = _frames(values, frame, hop) * np.hanning(frame)[None, :]
    power = np.abs(np.fft.rfft(frames, n_fft, axis=1)) ** 2
    bands = power @ _mel_filterbank(sample_rate_hz, n_fft, n_mels).T
    log_bands = 0.5 * np.log(np.maximum(bands, _LOG_FLOOR))  # log amplitude
    return np.asarray(log_bands @ _dct_matrix(n_mels, n_coefficients).T, dtype=np.float64)


def euclidean_costs(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise Euclidean distances between the rows of ``a`` and of ``b``."""
    squared = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
    return np.asarray(np.sqrt(np.maximum(squared, 0.0)), dtype=np.float64)


def dtw_path(costs: FloatArray) -> tuple[IndexArray, IndexArray]:
    """The minimum-cost path through ``costs`` from (0, 0) to (n-1, m-1), as row and
    column indices; each step advances the row, the column or both by one."""
    n, m = costs.shape
    if n == 0 or m == 0:
        raise ValueError("dtw_path needs two non-empty sequences")
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for diagonal in range(2, n + m + 1):  # cells (i, j), 1-based, with i + j == diagonal
        i = np.arange(max(1, diagonal - m), min(n, diagonal - 1) + 1)
        j = diagonal - i
        best = np.minimum(np.minimum(acc[i - 1, j - 1], acc[i - 1, j]), acc[i, j - 1])
        acc[i, j] = costs[i - 1, j - 1] + best
    rows, cols = [n - 1], [m - 1]
    i, j = n, m
    while (i, j) != (1, 1):
        steps = ((i - 1, j - 1), (i - 1, j), (i, j - 1))
        i, j = min(steps, key=lambda cell: acc[cell])
        rows.append(i - 1)
        cols.append(j - 1)
    return np.array(rows[::-1], dtype=np.intp), np.array(cols[::-1], dtype=np.intp)


def mel_cepstral_distortion_db(
    reference: FloatArray, test: FloatArray, rows: IndexArray, cols: IndexArray
) -> float:
    """Mean MCD in dB over aligned pairs of cepstra (c0 already left out)."""
    diff = reference[rows] - test[cols]
    return float(MCD_SCALE_DB * np.sqrt((diff * diff).sum(axis=1)).mean())


def f0_hz(
    samples: NDArray[np.floating] | NDArray[np.integer],
    sample_rate_hz: int,
    times_s: FloatArray,
    *,
    floor_hz: float = 75.0,
    ceiling_hz: float = 300.0,
) -> FloatArray:
    """F0 at each of ``times_s`` (nearest Praat pitch frame), 0 where unvoiced. The
    default range is Praat's for a male voice (the bundled voice speaks at ~90 Hz); a
    ceiling of 500 Hz lets the tracker jump octaves on it (2-3 % of frames 2 octaves off)."""
    import parselmouth

    values = _as_samples(samples)
    sound = parselmouth.Sound(values, sampling_frequency=float(sample_rate_hz))
    step_s = float(times_s[1] - times_s[0]) if times_s.size > 1 else 0.01
    pitch = sound.to_pitch_ac(time_step=step_s, pitch_floor=floor_hz, pitch_ceiling=ceiling_hz)
    frequency = np.asarray(pitch.selected_array["frequency"], dtype=np.float64)
    if frequency.size == 0:
        return np.zeros(times_s.size)
    index = np.rint((times_s - pitch.x1) / pitch.dx).astype(np.intp)
    inside = (index >= 0) & (index < frequency.size)
    out = np.zeros(times_s.size)
    out[inside] = frequency[index[inside]]
    return np.asarray(np.nan_to_num(out), dtype=np.float64)


def f0_rmse_semitones(
    reference_f0_hz: FloatArray, test_f0_hz: FloatArray, rows: IndexArray, cols: IndexArray
) -> tuple[float, int]:
    """RMSE in semitones over aligned pairs voiced in both, and how many pairs that is
    (NaN when none)."""
    a, b = reference_f0_hz[rows], test_f0_hz[cols]
    voiced = (a > 0) & (b > 0)
    if not voiced.any():
        return math.nan, 0
    semitones = 12.0 * np.log2(b[voiced] / a[voiced])
    return float(np.sqrt((semitones * semitones).mean())), int(voiced.sum())


def speech_duration_s(
    samples: NDArray[np.floating] | NDArray[np.integer],
    sample_rate_hz: int,
    *,
    frame_ms: float = 10.0,
    threshold_db: float = -40.0,
) -> float:
    """Seconds of frames whose RMS is within ``threshold_db`` of the loudest frame."""
    values = _as_samples(samples)
    frame = max(1, round(sample_rate_hz * frame_ms / 1000.0))
    frames = _frames(values, frame, frame)
    rms = np.sqrt((frames * frames).mean(axis=1))
    loudest = float(rms.max())
    if loudest <= 0.0:
        return 0.0
    active = rms >= loudest * 10.0 ** (threshold_db / 20.0)
    return float(active.sum() * frame / sample_rate_hz)


@dataclass(frozen=True, slots=True)
class SpeechComparison:
    mcd_db: float
    f0_rmse_semitones: float  # NaN when no aligned frame is voiced in both
    voiced_pairs: int
    duration_ratio: float  # speech duration of test / of reference
    reference_speech_s: float
    test_speech_s: float


def compare_speech(
    reference: NDArray[np.floating] | NDArray[np.integer],
    test: NDArray[np.floating] | NDArray[np.integer],
    sample_rate_hz: int,
) -> SpeechComparison:
    """MCD and F0 RMSE of ``test`` against ``reference`` after DTW, and their duration ratio."""
    ref_values, test_values = _as_samples(reference), _as_samples(test)
    ref_cep = mfcc(ref_values, sample_rate_hz)
    test_cep = mfcc(test_values, sample_rate_hz)
    rows, cols = dtw_path(euclidean_costs(ref_cep[:, 1:], test_cep[:, 1:]))
    mcd = mel_cepstral_distortion_db(ref_cep[:, 1:], test_cep[:, 1:], rows, cols)
    ref_f0 = f0_hz(ref_values, sample_rate_hz, frame_times_s(len(ref_cep), sample_rate_hz))
    test_f0 = f0_hz(test_values, sample_rate_hz, frame_times_s(len(test_cep), sample_rate_hz))
    f0_rmse, voiced = f0_rmse_semitones(ref_f0, test_f0, rows, cols)
    ref_s = speech_duration_s(ref_values, sample_rate_hz)
    test_s = speech_duration_s(test_values, sample_rate_hz)
    return SpeechComparison(
        mcd_db=mcd,
        f0_rmse_semitones=f0_rmse,
        voiced_pairs=voiced,
        duration_ratio=test_s / ref_s if ref_s > 0 else math.nan,
        reference_speech_s=ref_s,
        test_speech_s=test_s,
    )


# --- words ---------------------------------------------------------------------------

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_NUMBER_WORDS = frozenset(_ONES + _TENS[2:] + ["hundred"] + [name for _, name in _SCALES])


def _integer_words(n: int) -> list[str]:
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        rest = _integer_words(n % 100) if n % 100 else []
        return [_ONES[n // 100], "hundred", *rest]
    for scale, name in _SCALES:
        if n >= scale:
            rest = _integer_words(n % scale) if n % scale else []
            return [*_integer_words(n // scale), name, *rest]
    raise AssertionError("unreachable")


def _numeral_words(token: str) -> list[str]:
    whole, _, fraction = token.replace(",", "").partition(".")
    words = _integer_words(int(whole)) if whole else ["zero"]
    if fraction:
        words += ["point", *(_ONES[int(d)] for d in fraction)]
    return words


_NUMERAL = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")


def normalize_words(text: str) -> list[str]:
    """Lower-case words without punctuation, numerals spelled out ("36,000" ->
    "thirty six thousand", "8%" -> "eight percent"), "and" inside a number dropped."""
    text = text.lower().replace("%", " percent ").replace("&", " and ")
    text = re.sub(r"['\u2019]", "", text)
    text = _NUMERAL.sub(lambda m: " " + " ".join(_numeral_words(m.group())) + " ", text)
    words = re.sub(r"[^a-z0-9]+", " ", text).split()
    return [
        word
        for i, word in enumerate(words)
        if not (
            word == "and"
            and 0 < i < len(words) - 1
            and words[i - 1] in ("hundred", "thousand", "million", "billion")
            and words[i + 1] in _NUMBER_WORDS
        )
    ]


def word_edits(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance in words (substitutions, deletions, insertions)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, 1):
        current = [i]
        for j, hyp_word in enumerate(hypothesis, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
            )
        previous = current
    return previous[-1]


def word_error_rate(reference_text: str, hypothesis_text: str) -> float:
    """Word edits after ``normalize_words`` over the number of reference words."""
    reference = normalize_words(reference_text)
    if not reference:
        raise ValueError("the reference text has no words")
    return word_edits(reference, normalize_words(hypothesis_text)) / len(reference)
