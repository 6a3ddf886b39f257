"""The simulated market: deterministic for a seed, never crossed, depth kept, trades consume the book."""

from __future__ import annotations

from services.exchange_sim.market import DEFAULT_INSTRUMENTS, Market, SymbolMarket


def test_same_seed_same_market() -> None:
    a, b = Market(seed=3), Market(seed=3)
    for _ in range(500):
        for symbol in a.symbols:
            assert a.symbols[symbol].step() == b.symbols[symbol].step()
    assert a.symbols["BTCUSDT"].bids == b.symbols["BTCUSDT"].bids
    c = Market(seed=4)
    for _ in range(50):
        c.symbols["BTCUSDT"].step()
    assert c.symbols["BTCUSDT"].bids != a.symbols["BTCUSDT"].bids


def test_book_stays_sane_over_many_steps() -> None:
    market = SymbolMarket(DEFAULT_INSTRUMENTS["BTCUSDT"], seed=11, levels=50)
    traded = 0
    for _ in range(5_000):
        fills = market.step()
        traded += len(fills)
        assert market.best_bid() < market.best_ask()
        assert 1 <= market.best_ask() - market.best_bid() <= 4
        assert len(market.bids) >= 50 and len(market.asks) >= 50
        assert all(q > 0 for q in market.bids.values()) and all(q > 0 for q in market.asks.values())
        for fill in fills:
            assert fill.qty > 0
    assert traded > 1_000
    assert market.volume > 0


def test_price_moves() -> None:
    market = SymbolMarket(DEFAULT_INSTRUMENTS["ETHUSDT"], seed=5)
    start = market.mid_ticks2()
    prices = set()
    for _ in range(2_000):
        market.step()
        prices.add(market.mid_ticks2())
    assert len(prices) > 20 and market.mid_ticks2() != start


def test_prices_and_sizes_format_on_the_grid() -> None:
    btc = DEFAULT_INSTRUMENTS["BTCUSDT"]
    assert btc.price_text(650001) == "65000.10"
    assert btc.qty_text(1500) == "1.500"
