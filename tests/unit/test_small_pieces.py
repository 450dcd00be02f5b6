"""Cursors, ids, routing and download names."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.core.errors import ProblemError
from services.core.ids import uuid7
from services.core.objects.port import track_filename
from services.core.pagination import decode_cursor, encode_cursor
from services.gateway.routes import module_for

pytestmark = pytest.mark.unit


def test_cursor_round_trips_within_its_scope_only() -> None:
    cursor = encode_cursor({"scope": "title||", "v": "abc", "id": "1"})
    assert decode_cursor(cursor, scope="title||")["v"] == "abc"
    with pytest.raises(ProblemError) as err:
        decode_cursor(cursor, scope="duration||")
    assert err.value.code == "invalid_cursor"


@pytest.mark.parametrize("garbage", ["", "!!!", "e30", "bnVsbA"])
def test_garbage_cursor_is_a_client_error(garbage: str) -> None:
    with pytest.raises(ProblemError) as err:
        decode_cursor(garbage, scope="x")
    assert err.value.status == 400


def test_uuid7_is_version_7_and_ordered_by_time() -> None:
    a = uuid7(datetime(2026, 1, 1, tzinfo=UTC))
    b = uuid7(datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC))
    assert (a.version, a.variant) == (7, uuid.RFC_4122)
    assert a < b
    assert int(a.hex[:12], 16) == int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("path", "module"),
    [
        ("/v1/tracks", "services.library.handler"),
        ("/v1/tracks/1/stream", "services.library.handler"),
        ("/v1/uploads/1/complete", "services.library.handler"),
        ("/v1/trackster", None),
        ("/", None),
    ],
)
def test_routing_matches_whole_path_segments(path: str, module: str | None) -> None:
    assert module_for(path) == module


def test_download_filename_names_artists_and_title_without_unsafe_characters() -> None:
    row = {"title": "A/B: C?", "artists": ["X", "Y"], "file_extension": ".wav"}
    assert track_filename(row) == "X & Y - A_B_ C_.wav"
    assert track_filename({"title": "...", "artists": [], "file_extension": ".mp3"}) == "track.mp3"


def test_uuid7_made_in_the_same_millisecond_still_sort_in_order_of_making() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [uuid7(at) for _ in range(1000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 1000
    assert all((i.version, i.variant) == (7, uuid.RFC_4122) for i in ids)


def test_uuid7_in_a_forked_child_differs_from_the_parents() -> None:
    import os

    at = datetime(2026, 1, 1, tzinfo=UTC)
    uuid7(at)  # the pool is filled in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, uuid7(at).bytes)
        os._exit(0)
    os.waitpid(pid, 0)
    child = uuid.UUID(bytes=os.read(read, 16))
    assert child != uuid7(at)
