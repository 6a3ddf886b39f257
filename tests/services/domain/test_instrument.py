"""Instrument ids and rules, and the Bybit instruments-info parser that builds them."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import msgspec
import pytest

from services.domain.ids import intent_id_of, link_id_for
from services.domain.instrument import Instrument, InstrumentId
from services.venues.bybit.instruments import InstrumentsRefused, parse_instruments

# The first linear item of Bybit's documented answer (bybit-v5.md §3.5), and its spot example.
LINEAR = {"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "nextPageCursor": "", "list": [{
    "symbol": "BTCUSDT", "contractType": "LinearPerpetual", "status": "Trading", "baseCoin": "BTC",
    "quoteCoin": "USDT", "settleCoin": "USDT", "priceScale": "2",
    "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
    "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": "0.001", "qtyStep": "0.001",
                      "postOnlyMaxOrderQty": "1190.000", "maxMktOrderQty": "500.000", "minNotionalValue": "5"}}]}}
SPOT = {"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "list": [{
    "symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "status": "Trading",
    "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.0000001", "minOrderQty": "0.000011",
                      "maxOrderQty": "83", "minOrderAmt": "5", "maxOrderAmt": "8000000"},
    "priceFilter": {"tickSize": "0.1"}}]}}


def test_linear_and_spot_items_become_instruments() -> None:
    [linear] = parse_instruments(LINEAR)
    assert linear == Instrument(
        id=InstrumentId("bybit", "BTCUSDT"), kind="linear_perpetual", base_coin="BTC", quote_coin="USDT",
        tick_size=D("0.10"), lot_step=D("0.001"), min_qty=D("0.001"), max_qty=D("1190.000"), min_notional=D("5"),
        maker_fee=D("0.0002"), taker_fee=D("0.00055"))
    [spot] = parse_instruments(SPOT, fees={"BTCUSDT": (D("0.0008"), D("0.0009"))})
    assert (spot.kind, spot.lot_step, spot.min_qty, spot.min_notional, spot.maker_fee) == (
        "spot", D("0.000001"), D("0.000011"), D("5"), D("0.0008"))
    # Reference data travels in events: an instrument survives msgpack exactly.
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(linear), type=Instrument) == linear


def test_rules_on_the_grid() -> None:
    [btc] = parse_instruments(LINEAR)
    assert btc.ticks(D("65000.10")) == 650001 and btc.price_of(650001) == D("65000.10")
    assert btc.lots(D("0.005")) == 5 and btc.qty_of(5) == D("0.005")
    assert (btc.price_down(D("65000.19")), btc.price_up(D("65000.11")), btc.qty_down(D("0.0059"))) == (
        D("65000.10"), D("65000.20"), D("0.005"))
    assert btc.qty_violation(D("0.0015"))[0] == "qty_step"  # type: ignore[index]
    assert btc.qty_violation(D("2000"))[0] == "max_qty"  # type: ignore[index]
    assert btc.qty_violation(D("0.002")) is None
    assert btc.price_violation(D("65000.15")) is not None and btc.price_violation(D("65000.1")) is None
    assert btc.fee(D("0.01"), D("65000"), maker=False) == D("0.3575")
    with pytest.raises(ValueError, match="grid"):
        btc.ticks(D("1.05"))


def broken(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    answer = msgspec.json.decode(msgspec.json.encode(LINEAR))
    target = answer["result"]["list"][0]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return answer


@pytest.mark.parametrize(("answer", "message"), [
    ({"retCode": 10001, "retMsg": "params error"}, "retCode 10001"),
    (broken(("priceFilter", "tickSize"), "abc"), "priceFilter.tickSize of 'BTCUSDT'"),
    (broken(("lotSizeFilter", "qtyStep"), "0"), "positive lot_step"),
    (broken(("contractType",), "LinearFutures"), "LinearPerpetual"),
    (broken(("symbol",), ""), "a symbol"),
])
def test_an_answer_hean_cannot_read_is_refused_with_the_reason(answer: dict[str, Any], message: str) -> None:
    with pytest.raises(InstrumentsRefused, match=message):
        parse_instruments(answer)


def test_instrument_ids_and_link_ids() -> None:
    assert str(InstrumentId.parse("bybit:BTCUSDT")) == "bybit:BTCUSDT"
    for bad in ("BTCUSDT", ":BTCUSDT", "bybit:", "a:b:c"):
        with pytest.raises(ValueError, match="venue:SYMBOL"):
            InstrumentId.parse(bad)
    short, long = "abc-1", "x" * 40
    assert intent_id_of(link_id_for(short)) == short
    assert len(link_id_for(long)) <= 36 and link_id_for(long) == link_id_for(long)
