"""The reference-data part of the venue port, for every venue: Bybit's instruments-info and
Binance's exchangeInfo, parsed from documented answers and read over real sockets from the
simulator, whose two dialects state one venue's rules — so both sources must agree rule for rule."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import httpx
import msgspec
import pytest

from services.domain.instrument import Instrument, InstrumentId
from services.exchange_sim.server import SimConfig, Simulator
from services.venues import port
from services.venues.binance.instruments import BinanceInstruments, parse_exchange_info
from services.venues.bybit.instruments import BybitInstruments

# One symbol of Binance's exchangeInfo as fapi answers it (fields abridged; filters as documented).
EXCHANGE_INFO: dict[str, Any] = {"timezone": "UTC", "serverTime": 1_767_225_600_000, "rateLimits": [],
                                 "exchangeFilters": [], "assets": [], "symbols": [{
    "symbol": "BTCUSDT", "pair": "BTCUSDT", "contractType": "PERPETUAL", "status": "TRADING",
    "baseAsset": "BTC", "quoteAsset": "USDT", "marginAsset": "USDT", "pricePrecision": 2, "quantityPrecision": 3,
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "261.10", "maxPrice": "809484", "tickSize": "0.10"},
        {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "120", "stepSize": "0.001"},
        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
        {"filterType": "MIN_NOTIONAL", "notional": "100"},
        {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
         "multiplierDecimal": "4"}]},
    {"symbol": "BTCUSDT_261225", "contractType": "CURRENT_QUARTER", "status": "TRADING", "filters": []}]}


def test_an_exchange_info_symbol_becomes_an_instrument_by_its_filters() -> None:
    [btc] = parse_exchange_info(EXCHANGE_INFO, ["BTCUSDT"])
    assert btc == Instrument(
        id=InstrumentId("binance", "BTCUSDT"), kind="linear_perpetual", base_coin="BTC", quote_coin="USDT",
        tick_size=D("0.10"), lot_step=D("0.001"), min_qty=D("0.001"), max_qty=D("1000"), min_notional=D("100"),
        maker_fee=D("0.0002"), taker_fee=D("0.0005"), status="Trading")
    # the filters are found by type: their order in the list does not matter
    shuffled = copy.deepcopy(EXCHANGE_INFO)
    shuffled["symbols"][0]["filters"].reverse()
    assert parse_exchange_info(shuffled, ["BTCUSDT"]) == [btc]


def _broken(change: Any) -> dict[str, Any]:
    answer = copy.deepcopy(EXCHANGE_INFO)
    change(answer["symbols"][0])
    return answer


@pytest.mark.parametrize(("answer", "words"), [
    ({"code": -1003, "msg": "Too many requests; current limit is 2400 requests per minute."}, "code -1003"),
    ([], "JSON object"),
    ({"symbols": "BTCUSDT"}, "symbols list"),
    (_broken(lambda s: s["filters"].pop(4)), "MIN_NOTIONAL filter"),
    (_broken(lambda s: s["filters"][0].update(tickSize="abc")), "PRICE_FILTER.tickSize"),
    (_broken(lambda s: s["filters"][1].update(stepSize="NaN")), "finite LOT_SIZE.stepSize"),
    (_broken(lambda s: s["filters"][0].update(tickSize="0")), "BTCUSDT"),
    (_broken(lambda s: s.update(contractType="NEXT_QUARTER")), "dated futures"),
], ids=["error-body", "not-an-object", "symbols-not-a-list", "no-min-notional", "bad-tick", "nan-step",
        "zero-tick", "dated"])
def test_an_answer_that_cannot_be_read_is_refused_whole_with_the_reason(answer: Any, words: str) -> None:
    with pytest.raises(port.InstrumentsRefused, match=words):
        parse_exchange_info(answer, ["BTCUSDT"])


def test_a_dated_contract_not_asked_for_is_not_parsed() -> None:
    assert [i.symbol for i in parse_exchange_info(EXCHANGE_INFO, ["BTCUSDT"])] == ["BTCUSDT"]
    with pytest.raises(port.InstrumentsRefused, match="BTCUSDT_261225"):
        parse_exchange_info(EXCHANGE_INFO)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimConfig(port=0, rest_port=0, rate=20, symbols=("BTCUSDT", "ETHUSDT"), seed=3,
                                    binance=True))
    await simulator.start()
    yield simulator
    await simulator.stop()


SOURCES = {"bybit": lambda sim: BybitInstruments(f"http://127.0.0.1:{sim.rest_port}", "linear"),
           "binance": lambda sim: BinanceInstruments(f"http://127.0.0.1:{sim.rest_port}")}


@pytest.mark.parametrize("venue", SOURCES)
async def test_each_source_is_the_port_and_reads_the_venue_over_http(sim: Simulator, venue: str) -> None:
    source = SOURCES[venue](sim)
    assert isinstance(source, port.InstrumentSource) and source.venue == venue
    async with httpx.AsyncClient() as client:
        found = await source.read(client, ["BTCUSDT", "ETHUSDT", "DOGEUSDT"])
    assert [(i.id, i.kind, i.status) for i in found] == [
        (InstrumentId(venue, "BTCUSDT"), "linear_perpetual", "Trading"),
        (InstrumentId(venue, "ETHUSDT"), "linear_perpetual", "Trading")]


async def test_both_dialects_state_the_same_rules(sim: Simulator) -> None:
    async with httpx.AsyncClient() as client:
        bybit = await SOURCES["bybit"](sim).read(client, ["BTCUSDT", "ETHUSDT"])
        binance = await SOURCES["binance"](sim).read(client, ["BTCUSDT", "ETHUSDT"])
    rules = ("kind", "base_coin", "quote_coin", "tick_size", "lot_step", "min_qty", "max_qty", "min_notional")
    def stated(found: list[Instrument]) -> list[tuple[Any, ...]]:
        return [tuple(getattr(i, r) for r in rules) for i in found]
    assert stated(bybit) == stated(binance)
    assert {i.id.venue for i in binance} == {"binance"}
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(binance[0]), type=Instrument) == binance[0]


async def test_a_venue_that_answers_no_json_is_refused(sim: Simulator) -> None:
    source = BinanceInstruments(f"http://127.0.0.1:{sim.rest_port}/no-such-prefix")
    async with httpx.AsyncClient() as client:
        with pytest.raises(port.InstrumentsRefused, match="exchangeInfo"):
            await source.read(client, ["BTCUSDT"])
