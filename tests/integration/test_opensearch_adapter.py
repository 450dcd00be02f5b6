"""The OpenSearch adapter against a real server (OPENSEARCH_URL; skipped with the reason where
none is reachable): its mapping analyzes text as the tantivy adapter does, and on the fixture
corpus it answers what the tantivy adapter answers (the same matches, totals and facets; the same
order under the sorts by value). The contract suite (test_search_index_contract.py) runs against
it too; without a server its requests are checked in tests/unit/test_search_opensearch_requests.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.core.search.model import Range, SearchQuery, SearchResult
from tests.support.search_corpus import ALICE, BOB, upserts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    url = os.environ.get("OPENSEARCH_URL")
    if not url:
        pytest.skip(
            "OPENSEARCH_URL not set: these tests compare the OpenSearch adapter with tantivy on "
            "a real server (its request bodies are checked in "
            "tests/unit/test_search_opensearch_requests.py)"
        )
    from opensearchpy import OpenSearch

    client = OpenSearch(url, timeout=30)
    try:
        client.info()
    except Exception as exc:
        pytest.skip(f"OPENSEARCH_URL={url} is not reachable: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def both(client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """The fixture corpus in OpenSearch and in tantivy."""
    from services.core.search.opensearch_index import OpenSearchIndex
    from services.core.search.tantivy_index import TantivyIndex

    alias = f"msync-compare-{uuid.uuid4().hex[:10]}"
    opensearch = OpenSearchIndex(client, alias, replicas=0)
    tantivy = TantivyIndex(Path(tmp_path_factory.mktemp("tantivy")))
    opensearch.write(upserts())
    tantivy.write(upserts())
    yield opensearch, tantivy
    tantivy.close()
    client.indices.delete(index=f"{alias}-gen-*", ignore_unavailable=True)


QUERIES = [
    SearchQuery(viewer=ALICE),
    SearchQuery(viewer=BOB),
    SearchQuery(viewer=ALICE, text="beatls yesterdy"),
    SearchQuery(viewer=ALICE, text="yester"),
    SearchQuery(viewer=ALICE, text="the beatles yest"),
    SearchQuery(viewer=ALICE, text="bohemain rapsody"),
    SearchQuery(viewer=ALICE, text="daft punk dance"),
    SearchQuery(viewer=ALICE, text="café"),
    SearchQuery(viewer=ALICE, text="rock roll live"),
    SearchQuery(viewer=ALICE, bpm=Range(100, 120), sort="title"),
    SearchQuery(viewer=ALICE, duration_ms=Range(180_000, 240_000), sort="duration"),
    SearchQuery(viewer=ALICE, year=Range(1965, 1970), sort="newest"),
    SearchQuery(viewer=ALICE, genres=("jazz", "reggae"), moods=("cool", "happy")),
    SearchQuery(viewer=ALICE, tags=("piano",), instrumental=True),
    SearchQuery(viewer=ALICE, text="daft", genres=("funk", "electronic"), bpm=Range(110, 122)),
]


def _ids(result: SearchResult) -> list[uuid.UUID]:
    return [h.document.id for h in result.hits]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.text or '-'}|{q.sort}")
def test_the_same_answers_as_tantivy(both: tuple[Any, Any], query: SearchQuery) -> None:
    opensearch, tantivy = both
    got, expected = opensearch.search(query), tantivy.search(query)
    assert got.total == expected.total
    assert got.facets == expected.facets
    if query.sort == "relevance" and query.text:
        assert set(_ids(got)) == set(_ids(expected))
        assert _ids(got)[0] == _ids(expected)[0]  # the best match agrees
    else:
        assert _ids(got) == _ids(expected)
    for hit_got, hit_expected in zip(
        sorted(got.hits, key=lambda h: h.document.id.int),
        sorted(expected.hits, key=lambda h: h.document.id.int),
        strict=True,
    ):
        assert hit_got.document == hit_expected.document
        assert hit_got.highlights == hit_expected.highlights


@pytest.mark.parametrize(
    "text", ["Yesterday's News", "Café del Mar", "Rock & Roll <Live>", "Hip-Hop 2pac_x ÆSOP"]
)
def test_the_text_analyzer_splits_words_like_tantivy(
    both: tuple[Any, Any], client: Any, text: str
) -> None:
    from services.core.search.tantivy_index import _text_analyzer

    opensearch, _ = both
    live, _building = opensearch._targets()
    answer = client.indices.analyze(index=live, body={"analyzer": "ms_text", "text": text})
    assert [t["token"] for t in answer["tokens"]] == _text_analyzer().analyze(text)
