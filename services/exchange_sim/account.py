"""The simulator's account endpoints: wallet, account info, fee rates, API key info, coin info.

Read-only views of the matching engine's accounts in the shapes Bybit's docs give
(docs/v5/account/wallet-balance, account-info, fee-rate, user/apikey-info, asset/coin-info), so a
stock client's start-up calls (pybit's get_wallet_balance, get_fee_rates, get_api_key_information
...) get answers instead of 404. The simulator has one unified account per API key, settled in
USDT, with the engine's flat fee rates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from services.exchange_sim import requests
from services.exchange_sim.matching import MAKER_FEE, TAKER_FEE
from services.exchange_sim.views import wallet_view

if TYPE_CHECKING:
    from services.exchange_sim.private import Answer, PrivateApi

CREATED = "2026-01-01T00:00:00Z"
UPDATED_MS = "1767225600000"


def _wallet(api: PrivateApi, key: str, query: requests.WalletQuery, now_ms: int) -> Answer:
    """GET /v5/account/wallet-balance: the unified account, filtered to the coins asked for."""
    if query.accountType != "UNIFIED":
        return 10001, "params error: accountType only support UNIFIED", {}, {}
    wallet = wallet_view(api.sim.engine, api.sim.engine.accounts[key])
    if query.coin:
        wanted = set(query.coin.split(","))
        wallet = {**wallet, "coin": [c for c in wallet["coin"] if c["coin"] in wanted]}
    return 0, "OK", {"list": [wallet]}, {}


def _info(api: PrivateApi, key: str, query: requests.EmptyQuery, now_ms: int) -> Answer:
    """GET /v5/account/info: a UTA 2.0 account in regular (cross) margin."""
    return 0, "OK", {"marginMode": "REGULAR_MARGIN", "updatedTime": UPDATED_MS, "unifiedMarginStatus": 5,
                     "dcpStatus": "OFF", "timeWindow": 10, "smpGroup": 0, "isMasterTrader": False,
                     "spotHedgingStatus": "OFF"}, {}


def _fee_rate(api: PrivateApi, key: str, query: requests.FeeRateQuery, now_ms: int) -> Answer:
    """GET /v5/account/fee-rate: the engine's flat maker and taker rates for every listed symbol."""
    symbols = sorted(api.sim.engine.markets)
    if query.symbol:
        if query.symbol not in symbols:
            return 10001, f"params error: symbol {query.symbol} is not listed", {}, {}
        symbols = [query.symbol]
    rows: list[dict[str, Any]] = [{"symbol": s, "takerFeeRate": str(TAKER_FEE), "makerFeeRate": str(MAKER_FEE)}
                                  for s in symbols]
    if query.category != "spot":
        for row in rows:
            row["baseCoin"] = api.sim.engine.markets[row["symbol"]].instrument.base_coin
    return 0, "OK", {"list": rows}, {}


def _api_key(api: PrivateApi, key: str, query: requests.EmptyQuery, now_ms: int) -> Answer:
    """GET /v5/user/query-api: a read-write trading key without IP binding."""
    return 0, "", {"id": str(sorted(api.secrets).index(key) + 1), "note": "hean-sim", "apiKey": key,
                   "readOnly": 0, "secret": "", "permissions": {
                       "ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"], "Wallet": [],
                       "Options": [], "Derivatives": ["DerivativesTrade"], "CopyTrading": [], "BlockTrade": [],
                       "Exchange": [], "NFT": [], "Affiliate": [], "Earn": []},
                   "ips": ["*"], "type": 1, "deadlineDay": -1, "expiredAt": "", "createdAt": CREATED,
                   "unified": 0, "uta": 1, "userID": 1000 + sorted(api.secrets).index(key), "inviterID": 0,
                   "vipLevel": "No VIP", "mktMakerLevel": "0", "affiliateID": 0, "rsaPublicKey": "",
                   "isMaster": True, "parentUid": "0", "kycLevel": "LEVEL_1", "kycRegion": ""}, {}


def _coin(code: str, name: str, chain: str, accuracy: str) -> dict[str, Any]:
    return {"name": name, "coin": code, "remainAmount": "10000000", "chains": [{
        "chainType": name, "confirmation": "6", "withdrawFee": "0", "depositMin": "0", "withdrawMin": "0",
        "chain": chain, "chainDeposit": "1", "chainWithdraw": "1", "minAccuracy": accuracy,
        "withdrawPercentageFee": "0", "contractAddress": "", "safeConfirmNumber": "6", "withdrawMax": "10000000"}]}


COINS = {"USDT": _coin("USDT", "Tether", "ETH", "6"), "BTC": _coin("BTC", "Bitcoin", "BTC", "8"),
         "ETH": _coin("ETH", "Ethereum", "ETH", "8"), "SOL": _coin("SOL", "Solana", "SOL", "8")}


def _coin_info(api: PrivateApi, key: str, query: requests.CoinQuery, now_ms: int) -> Answer:
    """GET /v5/asset/coin/query-info: the settlement coin and the listed base coins."""
    rows = [COINS[query.coin]] if query.coin in COINS else [] if query.coin else list(COINS.values())
    return 0, "success", {"rows": rows}, {}


Handler = Callable[["PrivateApi", str, Any, int], "Answer"]
ENDPOINTS: dict[str, tuple[str, type, int, Handler]] = {
    "/v5/account/wallet-balance": ("GET", requests.WalletQuery, 50, _wallet),
    "/v5/account/info": ("GET", requests.EmptyQuery, 50, _info),
    "/v5/account/fee-rate": ("GET", requests.FeeRateQuery, 10, _fee_rate),
    "/v5/user/query-api": ("GET", requests.EmptyQuery, 10, _api_key),
    "/v5/asset/coin/query-info": ("GET", requests.CoinQuery, 5, _coin_info),
}
