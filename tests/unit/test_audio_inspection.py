"""inspect_file: supported audio is identified, measured, hashed and its tags normalised;
anything else is refused with the code that says why."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from services.library.audio import AudioRejected, Inspection, inspect_file
from tests.support.audio_files import (
    FORMATS,
    OPUS_SAMPLE_RATE,
    make_audio,
    make_not_audio,
    make_truncated,
    make_unsupported,
)

pytestmark = pytest.mark.unit

TAGS: dict[str, str | list[str]] = {
    "title": "Nachtfahrt über Café 東京",
    "artist": ["Ada Lovelace", "Grace Hopper"],
    "album": "Analytical Engines",
    "date": "2021-03-04",
    "genre": "Synthwave",
    "isrc": "USRC17607839",
    "bpm": "128",
    "key": "F#m",
}


@dataclass(frozen=True)
class Expected:
    container: str
    codec: str
    content_type: str
    extension: str


EXPECTED = {
    "mp3": Expected("mp3", "mp3", "audio/mpeg", ".mp3"),
    "wav": Expected("wav", "pcm", "audio/wav", ".wav"),
    "bwf": Expected("wav", "pcm", "audio/wav", ".wav"),
    "flac": Expected("flac", "flac", "audio/flac", ".flac"),
    "aiff": Expected("aiff", "pcm", "audio/aiff", ".aiff"),
    "m4a_aac": Expected("m4a", "aac", "audio/mp4", ".m4a"),
    "m4a_alac": Expected("m4a", "alac", "audio/mp4", ".m4a"),
    "ogg_vorbis": Expected("ogg", "vorbis", "audio/ogg", ".ogg"),
    "ogg_opus": Expected("ogg", "opus", "audio/ogg", ".opus"),
}


@dataclass(frozen=True)
class Upload:
    fmt: str
    path: Path
    inspection: Inspection


@pytest.fixture(scope="module", params=FORMATS)
def tagged_upload(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Upload:
    """Given one second of tagged audio in each supported format, inspected once."""
    fmt: str = request.param
    path = make_audio(fmt, tmp_path_factory.mktemp(fmt) / "upload", tags=TAGS)
    return Upload(fmt, path, inspect_file(path))


def rejection(path: Path) -> AudioRejected:
    with pytest.raises(AudioRejected) as caught:
        inspect_file(path)
    return caught.value


def test_each_format_is_identified_with_its_container_codec_content_type_and_extension(
    tagged_upload: Upload,
) -> None:
    # Given / When: the inspected upload
    facts = tagged_upload.inspection.facts

    # Then
    expected = EXPECTED[tagged_upload.fmt]
    assert (facts.container, facts.codec, facts.content_type, facts.extension) == (
        expected.container,
        expected.codec,
        expected.content_type,
        expected.extension,
    )


def test_duration_sample_rate_and_channels_describe_the_encoded_signal(
    tagged_upload: Upload,
) -> None:
    # Given / When
    facts = tagged_upload.inspection.facts

    # Then: one second of stereo, within 5% (encoders pad to whole frames)
    assert facts.duration_ms == pytest.approx(1000, rel=0.05)
    expected_rate = OPUS_SAMPLE_RATE if tagged_upload.fmt == "ogg_opus" else 44100
    assert facts.sample_rate == expected_rate
    assert facts.channels == 2
    assert facts.bitrate is not None and facts.bitrate > 0


def test_every_tag_round_trips_through_the_formats_native_tag_system(
    tagged_upload: Upload,
) -> None:
    # Given / When
    facts = tagged_upload.inspection.facts

    # Then
    assert facts.title == "Nachtfahrt über Café 東京"
    assert facts.artists == ("Ada Lovelace", "Grace Hopper")
    assert facts.album == "Analytical Engines"
    assert facts.year == 2021
    assert facts.genre == "Synthwave"
    assert facts.isrc == "USRC17607839"
    assert facts.bpm == 128.0
    assert facts.musical_key == "F#m"


def test_only_broadcast_wave_files_are_flagged_bwf(tagged_upload: Upload) -> None:
    # Given / When
    facts = tagged_upload.inspection.facts

    # Then
    assert facts.bwf is (tagged_upload.fmt == "bwf")


def test_sha256_and_size_are_those_of_the_bytes_on_disk(tagged_upload: Upload) -> None:
    # Given
    content = tagged_upload.path.read_bytes()

    # When
    inspection = tagged_upload.inspection

    # Then
    assert inspection.sha256 == hashlib.sha256(content).hexdigest()
    assert inspection.size == len(content)


@pytest.mark.parametrize("fmt", FORMATS)
def test_untagged_audio_has_no_tag_values(fmt: str, tmp_path: Path) -> None:
    # Given
    path = make_audio(fmt, tmp_path / "untagged")

    # When
    facts = inspect_file(path).facts

    # Then
    assert (facts.title, facts.artists, facts.album, facts.year, facts.genre) == (
        None,
        (),
        None,
        None,
        None,
    )
    assert (facts.isrc, facts.bpm, facts.musical_key) == (None, None, None)


@pytest.mark.parametrize("fmt", ["mp3", "flac", "m4a_aac"])
def test_artists_are_split_on_semicolons_but_never_on_slashes(fmt: str, tmp_path: Path) -> None:
    # Given: one value joined with "; " next to a native second value, and a name with a slash
    path = make_audio(
        fmt, tmp_path / "upload", tags={"artist": ["AC/DC; Ada Lovelace", "Grace Hopper"]}
    )

    # When
    facts = inspect_file(path).facts

    # Then
    assert facts.artists == ("AC/DC", "Ada Lovelace", "Grace Hopper")


@pytest.mark.parametrize(
    ("written", "read"),
    [("us-rc1-76-07839", "USRC17607839"), ("not an isrc", None)],
)
def test_isrc_is_normalised_and_junk_is_dropped(
    written: str, read: str | None, tmp_path: Path
) -> None:
    # Given
    path = make_audio("flac", tmp_path / "upload", tags={"isrc": written})

    # When
    facts = inspect_file(path).facts

    # Then
    assert facts.isrc == read


def test_fractional_bpm_is_kept_where_the_tag_system_allows_it(tmp_path: Path) -> None:
    # Given
    path = make_audio("mp3", tmp_path / "upload", tags={"bpm": "123.5"})

    # When
    facts = inspect_file(path).facts

    # Then
    assert facts.bpm == 123.5


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_missing_its_second_half_is_corrupt_audio(fmt: str, tmp_path: Path) -> None:
    # Given
    path = make_truncated(fmt, tmp_path / "upload")

    # When
    rejected = rejection(path)

    # Then
    assert rejected.code == "corrupt_audio"
    assert "truncated" in rejected.detail


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3"])
def test_truncation_detail_states_declared_and_present_seconds(fmt: str, tmp_path: Path) -> None:
    # Given: four seconds declared, half of the bytes on disk
    path = make_truncated(fmt, tmp_path / "upload", seconds=4.0)

    # When
    rejected = rejection(path)

    # Then
    assert rejected.detail == (
        "The file looks truncated: its header declares 4.0 s of audio but only 2.0 s are present."
    )


def test_flac_larger_than_the_hashing_reads_is_accepted_whole(tmp_path: Path) -> None:
    # Given: a FLAC several MiB long, so its end lies beyond the first read
    path = make_audio("flac", tmp_path / "long", seconds=30.0)
    assert path.stat().st_size > 3 * 2**20

    # When
    facts = inspect_file(path).facts

    # Then
    assert facts.duration_ms == 30_000


def test_flac_larger_than_the_hashing_reads_is_rejected_when_cut(tmp_path: Path) -> None:
    # Given
    path = make_truncated("flac", tmp_path / "long", seconds=30.0)

    # When
    rejected = rejection(path)

    # Then
    assert rejected.code == "corrupt_audio"


def test_ogg_cut_exactly_between_pages_is_corrupt_audio(tmp_path: Path) -> None:
    # Given: an Ogg Vorbis file without its final (end-of-stream) page
    path = make_audio("ogg_vorbis", tmp_path / "upload", seconds=4.0)
    content = path.read_bytes()
    path.write_bytes(content[: content.rfind(b"OggS")])

    # When
    rejected = rejection(path)

    # Then
    assert rejected.code == "corrupt_audio"


def test_a_png_is_not_audio(tmp_path: Path) -> None:
    # Given
    path = make_not_audio(tmp_path / "cover.png")

    # When
    rejected = rejection(path)

    # Then
    assert rejected.code == "not_audio"


def test_a_png_named_like_an_mp3_is_still_not_audio(tmp_path: Path) -> None:
    # Given: the name claims MP3, the content is an image
    path = make_not_audio(tmp_path / "song.mp3")

    # When
    rejected = rejection(path)

    # Then
    assert rejected.code == "not_audio"


def test_an_empty_file_is_not_audio(tmp_path: Path) -> None:
    # Given
    path = tmp_path / "empty.mp3"
    path.write_bytes(b"")

    # When
    rejected = rejection(path)

    # Then
    assert rejected.code == "not_audio"


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"ID3\x04\x00\x00\x00\x00\x00\x00", id="empty-id3v2.4-tag"),
        pytest.param(b"\xff\xfb\x90\x64", id="mpeg1-layer3-frame-header"),
    ],
)
def test_random_bytes_behind_an_mp3_header_are_corrupt_audio(head: bytes, tmp_path: Path) -> None:
    # Given: a header that claims MP3, followed by noise with no MPEG frames in it
    path = tmp_path / "upload"
    path.write_bytes(head + random.Random(0).randbytes(64 * 1024))

    # When
    rejected = rejection(path)

    # Then: it is an MP3 by its header, a broken one, rather than something else entirely
    assert rejected.code == "corrupt_audio"


def test_wma_is_an_unsupported_codec(tmp_path: Path) -> None:
    # Given
    path = make_unsupported(tmp_path / "upload.wma")

    # When
    rejected = rejection(path)

    # Then
    assert rejected.code == "unsupported_codec"
    assert "WMA" in rejected.detail


def test_compressed_wav_is_an_unsupported_codec(tmp_path: Path) -> None:
    # Given: IMA ADPCM in a RIFF/WAVE container
    path = tmp_path / "upload.wav"
    signal = np.zeros((44100, 2), dtype=np.float32)
    sf.write(path, signal, 44100, format="WAV", subtype="IMA_ADPCM")

    # When
    rejected = rejection(path)

    # Then
    assert rejected.code == "unsupported_codec"


def test_importing_the_module_leaves_mutagen_unloaded() -> None:
    # Given / When: a fresh interpreter imports the module, as a Lambda cold start does
    probe = "import sys, services.library.audio; print('mutagen' in sys.modules)"
    repo_root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=repo_root
    )

    # Then
    assert result.stdout.strip() == "False"
