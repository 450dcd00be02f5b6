"""Signed URLs of the local object store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from services.core.clock import ManualClock
from services.core.errors import ProblemError
from services.core.objects.local import LocalObjectStore
from services.core.objects.port import check_key, content_disposition

pytestmark = pytest.mark.unit
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> tuple[LocalObjectStore, ManualClock]:
    clock = ManualClock(NOW)
    return LocalObjectStore(tmp_path, b"secret", "http://h:1", clock), clock


def _split(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path.removeprefix("/objects/"), dict(parse_qsl(parts.query))


def test_a_signed_url_verifies_and_carries_its_limits(
    store: tuple[LocalObjectStore, ManualClock],
) -> None:
    objects, _ = store
    key, query = _split(
        objects.prepare_upload("t/u/1", 42, "audio/wav", NOW + timedelta(hours=1)).url or ""
    )
    signed = objects.verify(key, query)
    assert (signed.op, signed.key, signed.max_bytes) == ("put", "t/u/1", 42)


@pytest.mark.parametrize("field", ["max", "op", "exp"])
def test_changing_any_signed_parameter_breaks_the_signature(
    store: tuple[LocalObjectStore, ManualClock], field: str
) -> None:
    objects, _ = store
    key, query = _split(
        objects.prepare_upload("t/u/1", 42, None, NOW + timedelta(hours=1)).url or ""
    )
    query[field] = query[field] + "1"
    with pytest.raises(ProblemError) as err:
        objects.verify(key, query)
    assert err.value.code == "url_signature_invalid"


def test_a_url_for_one_object_does_not_open_another(
    store: tuple[LocalObjectStore, ManualClock],
) -> None:
    objects, _ = store
    _, query = _split(
        objects.media_url("t/u/1", content_type="audio/wav", expires_at=NOW + timedelta(minutes=5))
    )
    with pytest.raises(ProblemError) as err:
        objects.verify("t/u/2", query)
    assert err.value.code == "url_signature_invalid"


def test_an_expired_url_is_refused(store: tuple[LocalObjectStore, ManualClock]) -> None:
    objects, clock = store
    key, query = _split(
        objects.media_url("t/u/1", content_type="audio/wav", expires_at=NOW + timedelta(minutes=5))
    )
    clock.advance(timedelta(minutes=5, seconds=1))
    with pytest.raises(ProblemError) as err:
        objects.verify(key, query)
    assert err.value.code == "url_expired"


@pytest.mark.parametrize("key", ["../etc/passwd", "a/../../b", "/abs", "a//b", "a/b\x00", ""])
def test_keys_that_could_escape_the_folder_are_refused(key: str) -> None:
    with pytest.raises(ValueError):
        check_key(key)


def test_content_disposition_has_an_ascii_fallback_and_the_exact_utf8_name() -> None:
    assert content_disposition('Zoë "Live".wav') == (
        "attachment; filename=\"Zo_ _Live_.wav\"; filename*=UTF-8''Zo%C3%AB%20%22Live%22.wav"
    )


def test_a_value_holding_separators_cannot_forge_another_parameter(
    store: tuple[LocalObjectStore, ManualClock],
) -> None:
    # Given a download link for a name that contains the signed string's separators
    objects, _ = store
    url = objects.media_url(
        "t/u/1",
        content_type="audio/wav",
        expires_at=NOW + timedelta(minutes=5),
        download_filename="a.wav\nop=put",
    )
    key, query = _split(url)

    # When the name is moved into a parameter of its own
    forged = {**query, "dl": "a.wav", "op": "put"}

    # Then the signature no longer matches
    with pytest.raises(ProblemError) as err:
        objects.verify(key, forged)
    assert err.value.code == "url_signature_invalid"
    assert objects.verify(key, query).download_filename == "a.wav\nop=put"
