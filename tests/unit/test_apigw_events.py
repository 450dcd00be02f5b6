"""HTTP <-> API Gateway v2 event translation of the local gateway."""

from __future__ import annotations

import base64

import pytest

from musicsync.apigw import request_event, response_from_result

pytestmark = pytest.mark.unit


def _event(**overrides: object) -> dict[str, object]:
    args: dict[str, object] = {
        "method": "GET",
        "path": "/v1/tracks",
        "raw_query": "",
        "headers": [],
        "body": b"",
        "source_ip": "10.1.2.3",
        "request_id": "req-1",
        "host": "localhost",
    }
    args.update(overrides)
    return request_event(**args)  # type: ignore[arg-type]


def test_repeated_headers_and_query_parameters_are_comma_joined_like_api_gateway() -> None:
    event = _event(
        headers=[("Accept", "a/b"), ("X-Tag", "1"), ("x-tag", "2")],
        raw_query="genre=rock&genre=jazz&q=a%20b",
    )
    assert event["headers"] == {"accept": "a/b", "x-tag": "1,2"}
    assert event["queryStringParameters"] == {"genre": "rock,jazz", "q": "a b"}
    assert event["rawQueryString"] == "genre=rock&genre=jazz&q=a%20b"


def test_cookies_move_to_their_own_list() -> None:
    event = _event(headers=[("Cookie", "a=1; b=2")])
    assert event["cookies"] == ["a=1", "b=2"]
    assert "cookie" not in event["headers"]  # type: ignore[operator]


def test_json_body_stays_text_and_binary_body_is_base64() -> None:
    text = _event(method="POST", headers=[("Content-Type", "application/json")], body=b'{"a":1}')
    assert (text["body"], text["isBase64Encoded"]) == ('{"a":1}', False)
    raw = bytes(range(256))
    binary = _event(method="PUT", headers=[("Content-Type", "audio/wav")], body=raw)
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(str(binary["body"])) == raw


def test_a_json_body_that_is_not_utf8_travels_base64_encoded() -> None:
    raw = b'{"a": "\xff"}'
    event = _event(method="POST", headers=[("Content-Type", "application/json")], body=raw)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(str(event["body"])) == raw


def test_request_context_names_method_path_and_caller() -> None:
    http = _event(method="DELETE", path="/v1/tracks/1")["requestContext"]["http"]  # type: ignore[index]
    assert http == {
        "method": "DELETE",
        "path": "/v1/tracks/1",
        "protocol": "HTTP/1.1",
        "sourceIp": "10.1.2.3",
        "userAgent": "",
    }


def test_result_with_binary_body_cookies_and_multi_value_headers_becomes_http() -> None:
    out = response_from_result(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "audio/wav"},
            "multiValueHeaders": {"Link": ["<a>", "<b>"]},
            "cookies": ["s=1; HttpOnly", "t=2"],
            "body": base64.b64encode(b"\x00\x01").decode(),
            "isBase64Encoded": True,
        }
    )
    assert out.status == 201
    assert out.body == b"\x00\x01"
    assert out.headers == [
        ("Content-Type", "audio/wav"),
        ("Link", "<a>"),
        ("Link", "<b>"),
        ("set-cookie", "s=1; HttpOnly"),
        ("set-cookie", "t=2"),
    ]


def test_result_without_body_is_empty() -> None:
    assert response_from_result({"statusCode": 204}).body == b""
