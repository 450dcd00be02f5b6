"""Inspect an uploaded audio file: accept or reject it, hash it and read its tags.

The file is read once, in large chunks, for the SHA-256. Everything else (mutagen's parsing, the
truncation checks) reads only headers, or the last chunks that the hashing pass kept in memory.
(One exception: mutagen walks a whole Ogg file whose last page doesn't end its stream, which
happens only to truncated or multiplexed files.) The format is judged from content alone, never
from the file name.

Tag rules, the same for ID3, Vorbis comments and MP4 atoms:
- text fields take the first non-empty value, stripped;
- artists are the tag system's own multiple values (ID3v2.4 lists, repeated ARTIST comments,
  several ©ART values), each also split on ";" - never on "/", which names such as AC/DC use;
- the year is the leading four digits of the date; ISRCs are upper-cased with hyphens and spaces
  removed, and dropped if they don't have the ISRC shape; the BPM must be a positive number;
- the musical key is kept as written (notations vary: "F#m", "A minor", "11B").
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path
from typing import Any

CHUNK_SIZE = 1 << 20
# Missing audio below this fraction is put down to header rounding, not truncation.
TRUNCATION_TOLERANCE = 0.02

_SUPPORTED = "MP3, WAV, FLAC, AIFF, M4A (AAC or ALAC), Ogg Vorbis or Opus"
_OPUS_SAMPLE_RATE = 48000  # Opus always decodes at 48 kHz, whatever rate went into the encoder.


@dataclass(frozen=True)
class AudioFacts:
    """What an accepted upload holds: its format, stream properties and normalised tags."""

    container: str
    codec: str
    content_type: str
    extension: str
    duration_ms: int
    bitrate: int | None
    sample_rate: int | None
    channels: int | None
    title: str | None
    artists: tuple[str, ...]
    album: str | None
    year: int | None
    genre: str | None
    isrc: str | None
    bpm: float | None
    musical_key: str | None
    bwf: bool


class AudioRejected(Exception):
    """The upload is not audio we accept.

    `code` is one of "not_audio", "unsupported_codec", "corrupt_audio"; `detail` is written for
    the person who uploaded the file.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Inspection:
    """An accepted upload: its facts, and the SHA-256 (hex) and size of the bytes inspected."""

    facts: AudioFacts
    sha256: str
    size: int


@dataclass(frozen=True)
class _Format:
    container: str
    codec: str
    content_type: str
    extension: str


_MP3 = _Format("mp3", "mp3", "audio/mpeg", ".mp3")
_WAV = _Format("wav", "pcm", "audio/wav", ".wav")
_FLAC = _Format("flac", "flac", "audio/flac", ".flac")
_AIFF = _Format("aiff", "pcm", "audio/aiff", ".aiff")
_M4A_AAC = _Format("m4a", "aac", "audio/mp4", ".m4a")
_M4A_ALAC = _Format("m4a", "alac", "audio/mp4", ".m4a")
_OGG_VORBIS = _Format("ogg", "vorbis", "audio/ogg", ".ogg")
_OGG_OPUS = _Format("ogg", "opus", "audio/ogg", ".opus")

# mutagen types we reject, by class name, with the name people know them by.
_UNSUPPORTED_NAMES = {
    "AAC": "Raw AAC (ADTS)",
    "AC3": "AC-3",
    "ASF": "Windows Media Audio (WMA)",
    "DSDIFF": "DSD (DSDIFF)",
    "DSF": "DSD (DSF)",
    "MonkeysAudio": "Monkey's Audio",
    "Musepack": "Musepack",
    "OggFLAC": "Ogg FLAC",
    "OggSpeex": "Speex",
    "OggTheora": "Ogg video",
    "OptimFROG": "OptimFROG",
    "SMF": "MIDI",
    "TAK": "TAK",
    "TrueAudio": "TrueAudio",
    "WavPack": "WavPack",
}
# Audio containers mutagen doesn't parse at all, so they would otherwise pass for "not audio".
_UNPARSED_AUDIO_MAGIC = {
    b"RF64": "RF64 (64-bit WAV)",
    b"BW64": "BW64 (64-bit WAV)",
    b"caff": "Core Audio Format (CAF)",
}
# Bare MPEG audio streams that mutagen only recognises by file extension, by the frame
# header's layer bits. (MP3 proper, layer bits 1, is recognised from content.)
_MPEG_STREAM_NAMES = {0: "Raw AAC (ADTS)", 2: "MPEG Layer II", 3: "MPEG Layer I"}
# Codecs mutagen names only by their RFC 6381 id.
_MP4_CODEC_NAMES = {"mp4a.69": "MP3", "mp4a.6B": "MP3", "ac-3": "AC-3", "ec-3": "E-AC-3"}
# mutagen wraps most parse failures in MutagenError, but lets these escape on malformed input.
_PARSE_ERRORS: tuple[type[Exception], ...] = (
    struct.error,
    ValueError,
    IndexError,
    EOFError,
    OverflowError,
)

_WAVE_PCM = 0x0001
_WAVE_FLOAT = 0x0003
_WAVE_EXTENSIBLE = 0xFFFE
_AIFC_PCM = {b"NONE", b"sowt", b"twos", b"raw ", b"in24", b"in32", b"fl32", b"FL32", b"fl64"}
# MPEG-4 audio object types of the AAC family (ISO/IEC 14496-3), and the MPEG-2 AAC profiles.
_AAC_OBJECT_TYPES = {1, 2, 3, 4, 5, 6, 17, 19, 20, 23, 29, 39, 42}
_MPEG2_AAC = {"66", "67", "68"}

_FLAC_SYNC = re.compile(rb"\xff[\xf8\xf9]")
_FLAC_RATES = {
    1: 88200,
    2: 176400,
    3: 192000,
    4: 8000,
    5: 16000,
    6: 22050,
    7: 24000,
    8: 32000,
    9: 44100,
    10: 48000,
    11: 96000,
}
_FLAC_DEPTHS = {1: 8, 2: 12, 4: 16, 5: 20, 6: 24, 7: 32}
_OGG_EOS = 0x04

_FIELDS = ("title", "artist", "album", "date", "genre", "isrc", "bpm", "key")
_ID3_FRAMES = {
    "title": "TIT2",
    "artist": "TPE1",
    "album": "TALB",
    # mutagen folds ID3v2.3 TYER (and TDAT/TIME) into TDRC when it loads a tag.
    "date": "TDRC",
    "isrc": "TSRC",
    "bpm": "TBPM",
    "key": "TKEY",
}
_VORBIS_KEYS = {
    "title": ("title",),
    "artist": ("artist",),
    "album": ("album",),
    "date": ("date",),
    "genre": ("genre",),
    "isrc": ("isrc",),
    "bpm": ("bpm",),
    "key": ("key", "initialkey"),
}
_MP4_KEYS = {
    "title": ("\xa9nam",),
    "artist": ("\xa9ART",),
    "album": ("\xa9alb",),
    "date": ("\xa9day",),
    "genre": ("\xa9gen",),
    "isrc": ("----:com.apple.iTunes:ISRC",),
    "bpm": ("tmpo",),
    "key": ("----:com.apple.iTunes:initialkey",),
}
_ARTIST_SEPARATOR = re.compile(r"\s*;\s*")
_YEAR = re.compile(r"\s*(\d{4})")
_ISRC = re.compile(r"[A-Z]{2}[A-Z0-9]{3}\d{7}")


def inspect_file(path: Path) -> Inspection:
    """Identify, verify, hash and read the tags of the audio file at `path`.

    Raises AudioRejected when the file is not audio, is audio we don't accept, or is damaged.
    """
    # Imported here so that a cold start which never inspects a file doesn't pay for mutagen.
    import mutagen

    with _open_unnamed(path) as f:
        # mutagen's annotations are partial (FileType.info is declared None), hence Any.
        audio: Any
        unreadable: tuple[type[Exception], ...] = (mutagen.MutagenError, *_PARSE_ERRORS)
        try:
            audio = mutagen.File(f)
        except unreadable as error:
            raise AudioRejected(
                "corrupt_audio",
                "The file looks like audio but can't be read: it is damaged or incomplete.",
            ) from error
        if audio is None:
            raise _not_recognised(f)
        kind = type(audio).__name__
        if kind in _UNSUPPORTED_NAMES:
            raise AudioRejected(
                "unsupported_codec",
                f"{_UNSUPPORTED_NAMES[kind]} files aren't supported. Upload {_SUPPORTED}.",
            )
        sha256, size, tail = _hash(f)
        fmt, seconds, bwf = _verify(kind, audio.info, f, size, tail)

    if not (seconds > 0 and math.isfinite(seconds)):
        raise AudioRejected("corrupt_audio", "The file contains no audio: its duration is zero.")
    info = audio.info
    values = _tag_values(kind, audio.tags)
    facts = AudioFacts(
        container=fmt.container,
        codec=fmt.codec,
        content_type=fmt.content_type,
        extension=fmt.extension,
        duration_ms=round(seconds * 1000),
        bitrate=int(info.bitrate) or None,
        sample_rate=_OPUS_SAMPLE_RATE if fmt is _OGG_OPUS else int(info.sample_rate) or None,
        channels=int(info.channels) or None,
        title=_first(values["title"]),
        artists=_artists(values["artist"]),
        album=_first(values["album"]),
        year=_year(values["date"]),
        genre=_first(values["genre"]),
        isrc=_isrc(values["isrc"]),
        bpm=_bpm(values["bpm"]),
        musical_key=_first(values["key"]),
        bwf=bwf,
    )
    return Inspection(facts=facts, sha256=sha256, size=size)


def _open_unnamed(path: Path) -> BufferedReader:
    """Open `path` as a file object without a name.

    mutagen scores a file's extension alongside its content; without a name it has only the
    content to go on, so a PNG called song.mp3 is "not audio" rather than a "damaged MP3".
    """
    return os.fdopen(os.open(path, os.O_RDONLY), "rb")


def _not_recognised(f: BufferedReader) -> AudioRejected:
    f.seek(0)
    head = f.read(4)
    name = _UNPARSED_AUDIO_MAGIC.get(head)
    if name is None and len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        name = _MPEG_STREAM_NAMES.get((head[1] >> 1) & 0x03)
    if name is not None:
        return AudioRejected(
            "unsupported_codec", f"{name} files aren't supported. Upload {_SUPPORTED}."
        )
    return AudioRejected("not_audio", f"This file doesn't look like audio. Upload {_SUPPORTED}.")


def _hash(f: BufferedReader) -> tuple[str, int, bytes]:
    """SHA-256 (hex) and size of the whole file, plus its last one to two chunks."""
    digest = hashlib.sha256()
    # Two buffers used in turn: when the file ends, one holds the last read and the other the
    # read before it, which together are the file's tail, without copying on every read.
    buffers = (memoryview(bytearray(CHUNK_SIZE)), memoryview(bytearray(CHUNK_SIZE)))
    filled = [0, 0]
    size = 0
    turn = 0
    f.seek(0)
    while count := f.readinto(buffers[turn]):
        digest.update(buffers[turn][:count])
        filled[turn] = count
        size += count
        turn ^= 1
    # The loop ends on an empty read into buffers[turn], which leaves it as the older chunk.
    tail = bytes(buffers[turn][: filled[turn]]) + bytes(buffers[turn ^ 1][: filled[turn ^ 1]])
    return digest.hexdigest(), size, tail


def _verify(
    kind: str, info: Any, f: BufferedReader, size: int, tail: bytes
) -> tuple[_Format, float, bool]:
    """Check codec and completeness; returns the format, duration in seconds and BWF flag."""
    if kind == "MP3":
        return _MP3, _verify_mp3(info, f, size), False
    if kind == "WAVE":
        return _WAV, info.length, _verify_wave(info, f, size)
    if kind == "AIFF":
        _verify_aiff(info, f, size)
        return _AIFF, info.length, False
    if kind == "FLAC":
        return _FLAC, _verify_flac(info, tail), False
    if kind == "MP4":
        return _verify_mp4(info, f, size), info.length, False
    if kind in ("OggVorbis", "OggOpus"):
        _verify_ogg(info, tail)
        return (_OGG_VORBIS if kind == "OggVorbis" else _OGG_OPUS), info.length, False
    raise AudioRejected(
        "unsupported_codec", f"This kind of audio file isn't supported. Upload {_SUPPORTED}."
    )


def _require_complete(declared_seconds: float, present: float, declared: float) -> None:
    """Reject the file if much less of the stream is on disk (`present`) than its header says."""
    if declared <= 0 or present >= declared * (1 - TRUNCATION_TOLERANCE):
        return
    present_seconds = declared_seconds * max(present, 0) / declared
    raise AudioRejected(
        "corrupt_audio",
        f"The file looks truncated: its header declares {declared_seconds:.1f} s of audio "
        f"but only {present_seconds:.1f} s are present.",
    )


def _verify_mp3(info: Any, f: BufferedReader, size: int) -> float:
    if info.layer != 3:
        raise AudioRejected(
            "unsupported_codec",
            f"MPEG Layer {info.layer} audio isn't supported, only Layer 3 (MP3). "
            f"Upload {_SUPPORTED}.",
        )
    if info.sketchy:
        raise AudioRejected(
            "corrupt_audio",
            "The file starts like an MP3 but holds no playable MPEG audio: it is damaged.",
        )
    declared = _mp3_declared_bytes(info, f)
    if declared:
        _require_complete(info.length, size - info.frame_offset, declared)
    return float(info.length)


def _mp3_declared_bytes(info: Any, f: BufferedReader) -> int | None:
    """Stream size from the Xing/Info or VBRI header in the first frame, if the encoder wrote one.

    Without such a header mutagen estimates the duration from the file size, so a truncated
    constant-bitrate MP3 just looks shorter.
    """
    f.seek(info.frame_offset)  # mutagen's (undocumented) offset of the frame it measured
    frame = f.read(64)
    if info.version == 1:
        xing = 36 if info.channels != 1 else 21
    else:
        xing = 21 if info.channels != 1 else 13
    if frame[xing : xing + 4] in (b"Xing", b"Info"):
        flags = int.from_bytes(frame[xing + 4 : xing + 8], "big")
        if not flags & 0x2:
            return None
        field = xing + 8 + (4 if flags & 0x1 else 0)
        return int.from_bytes(frame[field : field + 4], "big")
    if frame[36:40] == b"VBRI":
        return int.from_bytes(frame[46:50], "big")
    return None


@dataclass(frozen=True)
class _Chunk:
    data_offset: int
    size: int


def _iff_chunks(f: BufferedReader, size: int, *, big_endian: bool) -> dict[bytes, _Chunk]:
    """The first chunk of each id in a RIFF or AIFF file, found by hopping from header to header."""
    layout = struct.Struct(">4sI" if big_endian else "<4sI")
    chunks: dict[bytes, _Chunk] = {}
    offset = 12
    while offset + layout.size <= size:
        f.seek(offset)
        chunk_id, chunk_size = layout.unpack(f.read(layout.size))
        chunks.setdefault(chunk_id, _Chunk(offset + layout.size, chunk_size))
        offset += layout.size + chunk_size + chunk_size % 2
    return chunks


def _verify_wave(info: Any, f: BufferedReader, size: int) -> bool:
    """Check a WAV holds complete PCM; returns whether it is a Broadcast Wave (has `bext`)."""
    chunks = _iff_chunks(f, size, big_endian=False)
    fmt = chunks[b"fmt "]  # mutagen has already refused a WAV without one
    f.seek(fmt.data_offset)
    fmt_data = f.read(min(fmt.size, 40))
    format_tag = int.from_bytes(fmt_data[:2], "little")
    if format_tag == _WAVE_EXTENSIBLE and len(fmt_data) >= 26:
        # The real format is the first two bytes of the SubFormat GUID.
        format_tag = int.from_bytes(fmt_data[24:26], "little")
    if format_tag not in (_WAVE_PCM, _WAVE_FLOAT):
        raise AudioRejected(
            "unsupported_codec",
            f"This WAV holds compressed audio (format 0x{format_tag:04X}); only PCM WAV is "
            f"supported. Upload {_SUPPORTED}.",
        )
    data = chunks.get(b"data")
    if data is not None:
        _require_complete(info.length, size - data.data_offset, data.size)
    return b"bext" in chunks


def _verify_aiff(info: Any, f: BufferedReader, size: int) -> None:
    chunks = _iff_chunks(f, size, big_endian=True)
    f.seek(8)
    if f.read(4) == b"AIFC":
        comm = chunks[b"COMM"]  # mutagen has already refused an AIFF without one
        f.seek(comm.data_offset + 18)
        compression = f.read(4)
        if compression not in _AIFC_PCM:
            name = compression.decode("latin-1").strip()
            raise AudioRejected(
                "unsupported_codec",
                f"This AIFF-C file is compressed ({name}); only uncompressed AIFF is supported. "
                f"Upload {_SUPPORTED}.",
            )
    ssnd = chunks.get(b"SSND")
    if ssnd is not None:
        f.seek(ssnd.data_offset)
        # SSND data starts with an offset to the first sample and a block size.
        skip = int.from_bytes(f.read(4), "big")
        audio_start = ssnd.data_offset + 8 + skip
        _require_complete(info.length, size - audio_start, ssnd.size - 8 - skip)


def _verify_flac(info: Any, tail: bytes) -> float:
    """Compare STREAMINFO's sample count with the last frame on disk; returns the duration."""
    total = int(info.total_samples)
    end = _flac_audio_end(tail, info, limit=total or None) or 0
    if not total:
        # Encoders writing to a pipe leave the total unknown (0): the last frame tells instead.
        return end / float(info.sample_rate)
    _require_complete(info.length, end, total)
    return float(info.length)


def _flac_audio_end(tail: bytes, info: Any, *, limit: int | None) -> int | None:
    """Samples up to the end of the last frame whose header is in `tail`.

    Takes the furthest frame end rather than the last sync code: compressed audio can contain
    the sync pattern, and a stray match must not cut an intact file short.
    """
    ends = (_flac_frame_end(tail, match.start(), info) for match in _FLAC_SYNC.finditer(tail))
    return max(
        (end for end in ends if end is not None and (limit is None or end <= limit)), default=None
    )


def _flac_frame_end(data: bytes, pos: int, info: Any) -> int | None:
    """Where the frame whose header starts at `pos` ends, in samples.

    None unless the bytes there are a frame header with a valid CRC-8 that agrees with
    STREAMINFO (sample rate, channels, bit depth, block size).
    """
    header = data[pos : pos + 16]
    if len(header) < 6:
        return None
    size_code, rate_code = header[2] >> 4, header[2] & 0x0F
    channel_code, depth_code = header[3] >> 4, (header[3] >> 1) & 0x07
    number_length = _coded_number_length(header[4])
    if number_length is None or size_code == 0 or rate_code == 15 or header[3] & 1:
        return None
    extra_size = {6: 1, 7: 2}.get(size_code, 0)
    extra_rate = {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    crc_at = 4 + number_length + extra_size + extra_rate
    if crc_at >= len(header) or _crc8(header[:crc_at]) != header[crc_at]:
        return None

    number = _coded_number(header[4 : 4 + number_length])
    at = 4 + number_length
    if size_code == 1:
        block = 192
    elif size_code <= 5:
        block = 576 << (size_code - 2)
    elif size_code <= 7:
        block = int.from_bytes(header[at : at + extra_size], "big") + 1
    else:
        block = 256 << (size_code - 8)
    at += extra_size
    if rate_code == 12:
        rate = header[at] * 1000
    elif rate_code in (13, 14):
        rate = int.from_bytes(header[at : at + 2], "big") * (1 if rate_code == 13 else 10)
    else:
        rate = _FLAC_RATES.get(rate_code, info.sample_rate)
    channels = channel_code + 1 if channel_code < 8 else 2
    depth = _FLAC_DEPTHS.get(depth_code, info.bits_per_sample)
    if (
        number is None
        or channel_code > 10
        or channels != info.channels
        or rate != info.sample_rate
        or depth != info.bits_per_sample
        or block > info.max_blocksize
    ):
        return None
    variable_blocks = header[1] & 0x01
    first_sample = number if variable_blocks else number * info.max_blocksize
    return int(first_sample + block)


def _coded_number_length(lead: int) -> int | None:
    """Bytes in a FLAC "UTF-8" coded number, from its first byte."""
    if lead < 0x80:
        return 1
    length = 8 - (~lead & 0xFF).bit_length()  # the count of leading one bits
    return length if 2 <= length <= 7 else None


def _coded_number(data: bytes) -> int | None:
    # The first byte keeps the bits after its length prefix (all seven for a one-byte number).
    value = data[0] & (0x7F >> (len(data) if len(data) > 1 else 0))
    for byte in data[1:]:
        if byte & 0xC0 != 0x80:
            return None
        value = value << 6 | byte & 0x3F
    return value


@functools.cache
def _crc8_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07 if crc & 0x80 else crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


def _crc8(data: bytes) -> int:
    """CRC-8 (polynomial 0x07), as FLAC frame headers use."""
    table = _crc8_table()
    crc = 0
    for byte in data:
        crc = table[crc ^ byte]
    return crc


def _verify_mp4(info: Any, f: BufferedReader, size: int) -> _Format:
    codec = str(info.codec)
    if not codec:
        raise AudioRejected("not_audio", f"The file has no audio track. Upload {_SUPPORTED}.")
    if codec == "alac":
        fmt = _M4A_ALAC
    elif _is_aac(codec):
        fmt = _M4A_AAC
    else:
        name = _MP4_CODEC_NAMES.get(codec) or info.codec_description or codec
        raise AudioRejected(
            "unsupported_codec",
            f"This M4A holds {name} audio; only AAC and ALAC are supported. Upload {_SUPPORTED}.",
        )
    overrun = _mp4_overrun(f, size)
    if overrun is not None:
        _require_complete(info.length, *overrun)
    return fmt


def _is_aac(codec: str) -> bool:
    """Whether an RFC 6381 codec string, as mutagen reports it, names AAC."""
    parts = codec.split(".")
    if parts[0] != "mp4a" or len(parts) < 2:
        return False
    if parts[1] in _MPEG2_AAC:
        return True
    return parts[1] == "40" and len(parts) == 3 and int(parts[2]) in _AAC_OBJECT_TYPES


def _mp4_overrun(f: BufferedReader, size: int) -> tuple[int, int] | None:
    """(bytes present, bytes declared) of the top-level atom that runs past the end, if any."""
    offset = 0
    while offset + 8 <= size:
        f.seek(offset)
        header = f.read(16)
        length, header_size = int.from_bytes(header[:4], "big"), 8
        if length == 1 and len(header) == 16:
            length, header_size = int.from_bytes(header[8:16], "big"), 16
        if length == 0:
            return None  # the last atom may say "to the end of the file"
        if length < header_size:
            return None  # not an atom; mutagen has parsed the structure it needs
        if offset + length > size:
            return size - offset - header_size, length - header_size
        offset += length
    return None


def _verify_ogg(info: Any, tail: bytes) -> None:
    """Ogg declares no length up front: a complete stream ends with an end-of-stream page."""
    if not _ogg_ends_cleanly(tail):
        raise AudioRejected(
            "corrupt_audio",
            f"The file looks truncated: its audio stops abruptly after {info.length:.1f} s, "
            "without the end-of-stream marker.",
        )


def _ogg_ends_cleanly(tail: bytes) -> bool:
    """Whether the last Ogg page in `tail` is whole and marked end-of-stream."""
    pos = tail.rfind(b"OggS")
    while pos >= 0:
        header = tail[pos : pos + 27]
        if len(header) < 27:
            return False  # cut inside the last page's header
        if header[4] == 0 and header[5] < 8:  # version 0, only the three defined flags
            segments = tail[pos + 27 : pos + 27 + header[26]]
            page_end = pos + 27 + header[26] + sum(segments)
            complete = len(segments) == header[26] and page_end <= len(tail)
            return complete and bool(header[5] & _OGG_EOS)
        pos = tail.rfind(b"OggS", 0, pos)
    return False


def _tag_values(kind: str, tags: Any) -> dict[str, list[str]]:
    """Raw tag values under our field names, from whichever tag system the format uses."""
    if tags is None:
        return {field: [] for field in _FIELDS}
    if kind in ("MP3", "WAVE", "AIFF"):
        values = {
            field: [str(text) for frame in tags.getall(frame_id) for text in frame.text]
            for field, frame_id in _ID3_FRAMES.items()
        }
        # TCON may hold ID3v1 genre numbers such as "(13)"; `genres` turns them into names.
        values["genre"] = [str(genre) for frame in tags.getall("TCON") for genre in frame.genres]
        return values
    if kind == "MP4":
        # Taggers disagree on the case of freeform names (ISRC, isrc), so match any case.
        by_name: Mapping[str, list[Any]] = {name.lower(): value for name, value in tags.items()}
        return {
            field: [_mp4_text(value) for key in keys for value in by_name.get(key.lower(), [])]
            for field, keys in _MP4_KEYS.items()
        }
    return {
        field: [str(value) for key in keys for value in tags.get(key, [])]
        for field, keys in _VORBIS_KEYS.items()
    }


def _mp4_text(value: Any) -> str:
    # Freeform atoms hold bytes; text atoms hold str, tmpo holds int.
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _first(values: Iterable[str]) -> str | None:
    return next((value.strip() for value in values if value.strip()), None)


def _artists(values: Iterable[str]) -> tuple[str, ...]:
    names = (name.strip() for value in values for name in _ARTIST_SEPARATOR.split(value))
    return tuple(dict.fromkeys(name for name in names if name))


def _year(values: Iterable[str]) -> int | None:
    for value in values:
        match = _YEAR.match(value)
        if match and int(match.group(1)) > 0:
            return int(match.group(1))
    return None


def _isrc(values: Iterable[str]) -> str | None:
    for value in values:
        code = re.sub(r"[\s-]", "", value).upper()
        if _ISRC.fullmatch(code):
            return code
    return None


def _bpm(values: Iterable[str]) -> float | None:
    for value in values:
        try:
            bpm = float(value)
        except ValueError:
            continue
        if math.isfinite(bpm) and bpm > 0:
            return bpm
    return None
