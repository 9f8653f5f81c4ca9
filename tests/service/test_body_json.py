"""Reading a body with its members' texts gives what json.loads gives, error for error. Pure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worker.service.body_json import read_object
from worker.service.requests import ManifestTexts

BODIES: list[bytes] = [
    b'{"service":"a","manifest":{"tables":[1,2,{"x":null}]}}',
    b' \n{ "service" : "a" , "manifest" : { "k" : [ ] } }\t',
    b"{}",
    b"{ }",
    b'{"a":1,"a":{"b":2}}',  # the last of repeated keys, as json.loads
    b'{"a":NaN,"b":-Infinity,"c":1e400}',
    b'{"a":"\\u00e9\\ud83d\\ude00","\\u0062":"\xc3\xa9"}',
    '{"a":"é"}'.encode("utf-16"),
    '{"a":"é"}'.encode("utf-32-le"),
    b'\xef\xbb\xbf{"a":1}',  # a UTF-8 BOM: json.loads of bytes skips it
    b"[1,2]",
    b'"text"',
    b"3",
    b"null",
]
BROKEN: list[bytes] = [
    b"",
    b"{",
    b'{"a":1',
    b'{"a":1,}',
    b'{"a" 1}',
    b'{"a":1 "b":2}',
    b"{a:1}",
    b'{"a":1}}',
    b'{"a":1} x',
    b'{"a":"\x01"}',  # a raw control character in a string
    b'{"a":\xff}',
    b'{"a":[1,2}',
    b'{"a":01}',
]


@pytest.mark.parametrize("body", BODIES, ids=repr)
def test_a_body_reads_as_json_loads_reads_it(body: bytes) -> None:
    members = read_object(body)
    expected = json.loads(body)
    assert json.dumps(members.values) == json.dumps(expected)  # NaN compares by its text
    if isinstance(expected, dict):
        assert members.texts.keys() == expected.keys()
        for name, text in members.texts.items():
            assert json.dumps(json.loads(text)) == json.dumps(expected[name])
    else:
        assert members.texts == {}


@pytest.mark.parametrize("body", BROKEN, ids=repr)
def test_a_broken_body_fails_as_json_loads_fails(body: bytes) -> None:
    try:
        json.loads(body)
    except ValueError as exc:
        expected = type(exc)  # UnicodeDecodeError or JSONDecodeError
    else:
        pytest.fail("json.loads read it")
    with pytest.raises(expected):
        read_object(body)


def test_a_member_text_is_exact() -> None:
    body = b'{"instance":"pod-1", "manifest" : {"b": [1, 2],  "a":"x"} ,"z":0}'
    assert read_object(body).texts["manifest"] == '{"b": [1, 2],  "a":"x"}'


def test_deep_nesting_fails_as_json_loads_fails() -> None:
    body = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(RecursionError):
        json.loads(body)
    with pytest.raises(RecursionError):
        read_object(body)


def remembered(*texts: str, entries: int = 8, chars: int = 100_000) -> ManifestTexts:
    known = ManifestTexts(entries=entries, chars=chars)
    for text in texts:
        known.keep(text, json.loads(text))
    return known


LONG = '"' + "p" * 100 + '"'  # a manifest text is found by its first 96 characters


def test_a_known_manifest_text_is_not_decoded_again() -> None:
    text = f'{{"service":"a","pad":{LONG},"tables":[{{"name":"t"}}]}}'
    known = remembered(text)
    first = read_object(f'{{"instance":"p1","manifest":{text}}}'.encode(), known.find)
    second = read_object(f'{{"manifest":{text},"instance":"p2"}}'.encode(), known.find)
    assert first.values["manifest"] is second.values["manifest"]  # the one decoded before
    assert second.values["instance"] == "p2"
    assert second.texts["manifest"] == text


@pytest.mark.parametrize(
    "sent",
    [
        '{"service":"a","pad":LONG,"tables":[{"name":"u"}]}',  # differs after the prefix
        '{"service":"a","pad":LONG,"tables":[{"name":"t"}],"x":1}',  # the known text, and more
        '{"service":"a","pad":LONG,"tables":[{"name":"t"}]}  ',  # spaces after: the same value
    ],
)
def test_a_text_that_only_starts_alike_is_decoded(sent: str) -> None:
    known = remembered(f'{{"service":"a","pad":{LONG},"tables":[{{"name":"t"}}]}}')
    body = f'{{"manifest":{sent.replace("LONG", LONG)}}}'.encode()
    members = read_object(body, known.find)
    assert members.values == json.loads(body)
    assert members.texts["manifest"] == sent.replace("LONG", LONG).rstrip()


def test_only_the_manifest_member_is_looked_up() -> None:
    text = f'{{"k":{LONG}}}'
    known = remembered(text)
    body = f'{{"other":{text},"manifest":{text}}}'.encode()
    members = read_object(body, known.find)
    assert members.values["manifest"] is not members.values["other"]
    assert members.values == json.loads(body)


def test_the_manifest_texts_stay_within_their_bounds() -> None:
    def manifest(i: int) -> str:
        return json.dumps({"service": f"s{i}", "pad": "x" * 100})

    by_entries = remembered(*(manifest(i) for i in range(10)), entries=3)
    assert len(by_entries) == 3
    assert by_entries.find("manifest", manifest(9), 0) is not None  # the latest are kept
    assert by_entries.find("manifest", manifest(0), 0) is None
    by_chars = remembered(*(manifest(i) for i in range(10)), chars=3 * len(manifest(0)))
    assert len(by_chars) == 3
    huge = remembered(json.dumps({"pad": "x" * 1000}), chars=500)  # heavier than the bound
    assert len(huge) == 0
    assert len(remembered('{"k":1}')) == 0  # shorter than the prefix: quick to decode anyway


def test_texts_that_share_a_prefix_keep_the_latest_four() -> None:
    prefix = '{"service":"s","pad":"' + "x" * 120
    texts = [f'{prefix}{i}"}}' for i in range(6)]
    known = remembered(*texts)
    assert len(known) == 1
    found: list[Any] = [known.find("manifest", text, 0) for text in texts]
    assert [f is not None for f in found] == [False, False, True, True, True, True]
