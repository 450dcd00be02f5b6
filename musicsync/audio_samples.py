"""Small, real, distinct WAV files for the activity simulator (standard library only).

A simulated catalogue needs tracks of believable length (players report progress every 10 s and
the pitch page refuses positions past a track's end), yet thousands of them must upload in
seconds. So the audio is 8-bit mono PCM at a low sample rate: about 1 KB a second, a three
minute cue in under 200 KB, and still a WAV that every part of the product (and any player)
reads as what it is.

Every file is distinct: its tone, its tone changes and a short signature at the start all come
from the key, so two keys never give the same bytes (nor the same SHA-256).
"""

from __future__ import annotations

import hashlib
import io
import math
import wave

DEFAULT_SAMPLE_RATE = 1000
_SIGNATURE_SAMPLES = 32
# Periods (in samples) of the tones: 1000 Hz / 6..40 gives 25-167 Hz at the default rate.
_MIN_PERIOD, _MAX_PERIOD = 6, 40


def tone_wav(key: str, seconds: float, *, sample_rate: int = DEFAULT_SAMPLE_RATE) -> bytes:
    """A WAV of ``seconds`` (at least 0.1 s) whose sound and bytes follow from ``key``.

    The tone steps between a few pitches, one a second, chosen from the key's hash; the first
    samples are the hash itself (a click too short to hear), which keeps every key's file unique.
    """
    if seconds < 0.1:
        raise ValueError("a sample needs at least 0.1 s of audio")
    if sample_rate < 2 * _MIN_PERIOD:
        raise ValueError("sample rate too low for the tones")
    digest = hashlib.sha256(key.encode()).digest()
    frames = max(int(seconds * sample_rate), _SIGNATURE_SAMPLES + 1)
    periods = [_MIN_PERIOD + b % (_MAX_PERIOD - _MIN_PERIOD + 1) for b in digest[:4]]
    amplitude = 40 + digest[4] % 60
    cycles = {p: _cycle(p, amplitude) for p in set(periods)}
    signature = bytes(96 + b % 64 for b in digest[:_SIGNATURE_SAMPLES])
    body = bytearray(signature)
    second = 0
    while len(body) < frames:
        cycle = cycles[periods[second % len(periods)]]
        # One second of this tone, as whole cycles repeated (fast: no per-sample Python work).
        body += cycle * (sample_rate // len(cycle) + 1)
        second += 1
    del body[frames:]
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(1)  # 8-bit PCM: unsigned, silence at 128
        file.setframerate(sample_rate)
        file.writeframes(bytes(body))
    return out.getvalue()


def _cycle(period: int, amplitude: int) -> bytes:
    return bytes(128 + round(amplitude * math.sin(2 * math.pi * n / period)) for n in range(period))
