"""Real audio files for tests, tagged with mutagen in each format's native tag system."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import av
import numpy as np
import soundfile as sf
from av.audio.stream import AudioStream
from mutagen.aiff import AIFF
from mutagen.flac import FLAC
from mutagen.id3 import TALB, TBPM, TCON, TDRC, TIT2, TKEY, TPE1, TSRC
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

FORMATS = (
    "mp3",
    "wav",
    "bwf",
    "flac",
    "aiff",
    "m4a_aac",
    "m4a_alac",
    "ogg_vorbis",
    "ogg_opus",
)
TAG_KEYS = ("title", "artist", "album", "date", "genre", "isrc", "bpm", "key")
OPUS_SAMPLE_RATE = 48000
CHANNELS = 2

_SOUNDFILE_FORMATS: dict[str, tuple[str, str]] = {
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "wav": ("WAV", "PCM_16"),
    "bwf": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "aiff": ("AIFF", "PCM_16"),
    "ogg_vorbis": ("OGG", "VORBIS"),
    "ogg_opus": ("OGG", "OPUS"),
}
# mutagen's classes are unannotated; held as Any, they can be called from typed code.
_TAGGED_FILES: dict[str, Any] = {
    "mp3": MP3,
    "wav": WAVE,
    "bwf": WAVE,
    "aiff": AIFF,
    "flac": FLAC,
    "ogg_vorbis": OggVorbis,
    "ogg_opus": OggOpus,
    "m4a_aac": MP4,
    "m4a_alac": MP4,
}
_ID3_FRAMES: dict[str, Any] = {
    "title": TIT2,
    "artist": TPE1,
    "album": TALB,
    "date": TDRC,
    "genre": TCON,
    "isrc": TSRC,
    "bpm": TBPM,
    "key": TKEY,
}
_MP4_ATOMS = {
    "title": "\xa9nam",
    "artist": "\xa9ART",
    "album": "\xa9alb",
    "date": "\xa9day",
    "genre": "\xa9gen",
}
_MP4_FREEFORM = {"isrc": "----:com.apple.iTunes:ISRC", "key": "----:com.apple.iTunes:initialkey"}
_CHUNK = 1 << 20
_WAV_HEADER_SIZE = 44


def make_audio(
    fmt: str,
    path: Path,
    *,
    seconds: float = 1.0,
    tags: Mapping[str, str | list[str]] | None = None,
    sample_rate: int = 44100,
) -> Path:
    """Write `seconds` of stereo sine-plus-noise in `fmt` (one of FORMATS), then tag it.

    Opus always uses 48 kHz (the only rate it decodes at), whatever `sample_rate` says.
    MP4 stores BPM as an integer, so a fractional "bpm" is rounded there.
    """
    if fmt == "ogg_opus":
        sample_rate = OPUS_SAMPLE_RATE
    signal = _signal(seconds, sample_rate)
    if fmt in ("m4a_aac", "m4a_alac"):
        codec, sample_format = ("aac", "fltp") if fmt == "m4a_aac" else ("alac", "s16p")
        # faststart puts moov before mdat, as iTunes does, so a cut file keeps its header.
        _encode_with_av(
            path, signal, sample_rate, "ipod", codec, sample_format, {"movflags": "faststart"}
        )
    elif fmt in _SOUNDFILE_FORMATS:
        container, subtype = _SOUNDFILE_FORMATS[fmt]
        sf.write(path, signal, sample_rate, format=container, subtype=subtype)
    else:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    if fmt == "bwf":
        _insert_bext_chunk(path)
    if tags:
        _write_tags(fmt, path, tags)
    return path


def make_not_audio(path: Path) -> Path:
    """A valid 1x1 PNG: the most likely wrong file to land in an audio upload."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x80\x00")
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
    path.write_bytes(png + chunk(b"IEND", b""))
    return path


def make_truncated(fmt: str, path: Path, *, seconds: float = 4.0) -> Path:
    """A `fmt` file whose header is intact but whose second half is missing."""
    make_audio(fmt, path, seconds=seconds)
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)
    return path


def make_unsupported(path: Path) -> Path:
    """A real WMA (Windows Media Audio v2 in ASF): audio that we do not accept."""
    sample_rate = 44100
    _encode_with_av(path, _signal(1.0, sample_rate), sample_rate, "asf", "wmav2", "fltp", {})
    return path


def make_large_wav(path: Path, size_bytes: int) -> Path:
    """A valid 16-bit stereo WAV of exactly `size_bytes`, streamed to disk in 1 MiB blocks.

    The payload repeats one block of random bytes, so compressing filesystems can't shrink it.
    """
    data_size = size_bytes - _WAV_HEADER_SIZE
    if data_size < 0 or data_size % 4:
        raise ValueError("size_bytes must be at least 44 and a multiple of 4 (whole frames)")
    block = np.random.default_rng(0).integers(0, 256, _CHUNK, dtype=np.uint8).tobytes()
    with path.open("wb") as f:
        f.write(_wav_header(data_size, sample_rate=44100, channels=2, bits=16))
        whole, rest = divmod(data_size, _CHUNK)
        for _ in range(whole):
            f.write(block)
        f.write(block[:rest])
    return path


def _signal(seconds: float, sample_rate: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Two different tones plus a little noise, so encoders do real work: (frames, channels)."""
    frames = max(1, round(seconds * sample_rate))
    t = np.arange(frames) / sample_rate
    tones = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], axis=1)
    noise = np.random.default_rng(7).standard_normal((frames, CHANNELS))
    return (0.4 * tones + 0.01 * noise).astype(np.float32)


def _encode_with_av(
    path: Path,
    signal: np.ndarray[Any, np.dtype[np.float32]],
    sample_rate: int,
    container: str,
    codec: str,
    sample_format: str,
    options: dict[str, str],
) -> None:
    with av.open(str(path), "w", format=container, options=options) as out:
        stream = out.add_stream(codec, rate=sample_rate, layout="stereo")
        assert isinstance(stream, AudioStream)
        stream.codec_context.format = sample_format
        if codec == "wmav2":
            stream.codec_context.bit_rate = 128_000
        # Opened early: the encoder's frame size is only known once it is open.
        stream.codec_context.open()
        frame_size = stream.codec_context.frame_size or 1024
        planar = np.ascontiguousarray(signal.T)
        if sample_format == "s16p":
            planar = np.ascontiguousarray((planar * 32767).astype(np.int16))
        for start in range(0, planar.shape[1], frame_size):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(planar[:, start : start + frame_size]),
                format=sample_format,
                layout="stereo",
            )
            frame.sample_rate = sample_rate
            frame.pts = start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _wav_header(data_size: int, *, sample_rate: int, channels: int, bits: int) -> bytes:
    block_align = channels * bits // 8
    return (
        struct.pack("<4sI4s", b"RIFF", 36 + data_size, b"WAVE")
        + struct.pack(
            "<4sIHHIIHH",
            b"fmt ",
            16,
            1,
            channels,
            sample_rate,
            sample_rate * block_align,
            block_align,
            bits,
        )
        + struct.pack("<4sI", b"data", data_size)
    )


def _insert_bext_chunk(path: Path) -> None:
    """Turn a WAV into a Broadcast Wave file: a `bext` chunk first, RIFF size fixed up."""
    history = b"A=PCM,W=16,M=stereo,T=musicsync tests\r\n"
    bext = struct.pack(
        "<256s32s32s10s8sIIH64s5h180s",
        b"musicsync test tone",
        b"musicsync",
        b"MS-TEST-0001",
        b"2024-01-02",
        b"03-04-05",
        0,
        0,
        2,
        b"",
        0,
        0,
        0,
        0,
        0,
        b"",
    )
    bext += history + b"\x00" * (len(history) % 2)
    original = path.read_bytes()
    if original[:4] != b"RIFF" or original[8:12] != b"WAVE":
        raise ValueError(f"{path} is not a RIFF/WAVE file")
    body = original[12:]
    chunk = struct.pack("<4sI", b"bext", len(bext)) + bext
    riff_size = 4 + len(chunk) + len(body)
    path.write_bytes(struct.pack("<4sI4s", b"RIFF", riff_size, b"WAVE") + chunk + body)


def _write_tags(fmt: str, path: Path, tags: Mapping[str, str | list[str]]) -> None:
    unknown = set(tags) - set(TAG_KEYS)
    if unknown:
        raise ValueError(f"unknown tag keys {sorted(unknown)}; expected some of {TAG_KEYS}")
    values = {
        key: [value] if isinstance(value, str) else list(value) for key, value in tags.items()
    }
    audio = _TAGGED_FILES[fmt](path)
    if audio.tags is None:
        audio.add_tags()
    if fmt in ("mp3", "wav", "bwf", "aiff"):
        for key, texts in values.items():
            audio.tags.add(_ID3_FRAMES[key](encoding=3, text=texts))
        audio.save(v2_version=4)
        return
    for key, texts in values.items():
        if fmt.startswith("m4a"):
            name, value = _mp4_item(key, texts)
            audio.tags[name] = value
        else:
            audio.tags[key] = texts
    audio.save()


def _mp4_item(key: str, texts: list[str]) -> tuple[str, list[str] | list[int] | list[bytes]]:
    if key in _MP4_ATOMS:
        return _MP4_ATOMS[key], texts
    if key == "bpm":
        return "tmpo", [round(float(text)) for text in texts]
    return _MP4_FREEFORM[key], [text.encode() for text in texts]


# Tags every format can carry, for tests that check they come back from the API.
SAMPLE_TAGS: dict[str, str | list[str]] = {
    "title": "Night Drive",
    "artist": ["Ada Lane", "The Sync Band"],
    "album": "Cues Vol. 1",
    "date": "2024",
    "genre": "Synthwave",
    "isrc": "USRC17607839",
    "bpm": "118",
    "key": "Am",
}
