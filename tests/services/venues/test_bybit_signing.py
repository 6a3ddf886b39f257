"""Signing against the known-answer vectors of bybit-v5.md §2.1 and §3.3 (secret test-secret-0123456789)."""

from __future__ import annotations

import pytest

from services.venues.bybit.signing import query_string, rest_signature, verify_rest_signature, ws_auth_signature

SECRET = "test-secret-0123456789"


@pytest.mark.parametrize(("timestamp", "payload", "expected"), [
    ("1658384314791", "category=option&symbol=BTC-29JUL22-25000-C",
     "44cd56dd7f586d4c0f7374b4ea02c8605d31f5c1eb48ef865cfd2236378f1678"),
    ("1658385579423", '{"category": "option"}',
     "df5050fe26da2a69f633ffd909968d7a5234623cf215c08229a1e78d27aa5528"),
    ("1672211928338", '{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.001",'
                      '"price":"10000","timeInForce":"GTC","orderLinkId":"kat-0001"}',
     "fc06651d367d25f5391c54adef97d1b00d7c1c1f07721c4fc3d3c3eb6f26e0db"),
])
def test_rest_known_answers(timestamp: str, payload: str, expected: str) -> None:
    assert rest_signature(SECRET, timestamp, "XXXXXXXXXX", "5000", payload) == expected
    assert verify_rest_signature(SECRET, timestamp, "XXXXXXXXXX", "5000", payload, expected.upper())
    assert not verify_rest_signature(SECRET, timestamp, "XXXXXXXXXX", "5000", payload + " ", expected)


def test_ws_auth_known_answer() -> None:
    assert ws_auth_signature(SECRET, 1662350400000) == \
        "15fb3c95518f3b90ae93f4bc1e31adb7e167feb1286f8349d259270f69661eb9"


def test_query_string_is_sorted_and_skips_none() -> None:
    assert query_string({"symbol": "BTC-29JUL22-25000-C", "category": "option", "cursor": None}) == \
        "category=option&symbol=BTC-29JUL22-25000-C"
