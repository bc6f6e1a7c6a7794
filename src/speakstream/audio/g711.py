"""G.711 μ-law and A-law (ITU-T G.711), vectorized with numpy: trivial codecs, no library.

Encoders take float samples in [-1, 1] and return one byte per sample; decoders return
float samples. Segment/quantization tables follow the standard's piecewise-linear form.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from speakstream.audio.pcm import FloatArray, float_to_int16

_MULAW_BIAS = 0x84
_MULAW_CLIP = 32635
_MULAW_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


def _to_int32(samples: FloatArray) -> npt.NDArray[np.int32]:
    """The shared 16-bit conversion, widened so the shifts and negations below cannot wrap."""
    return float_to_int16(samples).astype(np.int32)


def mulaw_encode(samples: FloatArray) -> bytes:
    # 14-bit magnitudes as in the reference implementation (bit-exact with it).
    pcm = _to_int32(samples) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), _MULAW_CLIP >> 2) + (_MULAW_BIAS >> 2)
    segment = np.searchsorted(_MULAW_SEGMENT_ENDS, magnitude, side="left")
    encoded = ((segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)) ^ mask
    return bytes(encoded.astype(np.uint8).tobytes())


def mulaw_decode(data: bytes) -> FloatArray:
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    pcm = np.where(sign != 0, -magnitude, magnitude)
    return (pcm / 32767.0).astype(np.float32)


def alaw_encode(samples: FloatArray) -> bytes:
    pcm = _to_int32(samples) >> 3  # A-law works on 13-bit magnitudes
    sign = np.where(pcm >= 0, 0x80, 0x00)
    magnitude = np.where(pcm >= 0, pcm, -pcm - 1)
    magnitude = np.minimum(magnitude, 0xFFF)
    exponent = np.where(
        magnitude >= 32, np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32) - 4, 0
    )
    exponent = np.clip(exponent, 0, 7)
    mantissa = np.where(exponent == 0, magnitude >> 1, magnitude >> exponent) & 0x0F
    encoded = (sign | (exponent << 4) | mantissa) ^ 0x55
    return bytes(encoded.astype(np.uint8).tobytes())


def alaw_decode(data: bytes) -> FloatArray:
    a = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    pcm = np.where(sign != 0, magnitude, -magnitude)
    return (pcm / 32767.0).astype(np.float32)
