"""Quote currencies: minor units (pence, cents, agorot) and how a price is shown in major units.

Guarantees:
- Prices are stored as the provider quotes them (``OCDO.L`` at 1259.5 ``GBp`` stays 1259.5); the
  currency code travels with every event and watchlist entry, from the provider's metadata.
- ``major(value, code)`` turns a quoted value into (value in major units, ISO 4217 code): ``GBp``
  and ``GBX`` are 1/100 GBP, ``ZAc``/``ZAC`` 1/100 ZAR, ``ILA`` 1/100 ILS; an ISO code is returned
  unchanged. Codes are case-sensitive on purpose: ``GBp`` (pence) is not ``GBP`` (pounds).
- An unknown code gives ``(value, None)``: the caller shows the raw number marked "unit unknown",
  never a guessed unit.
- ``money(value, code)`` is the display text: "£6.12", "$187.30", "¥2,450", "CHF 91.20", or
  "612.30 (unit unknown)".
"""

from __future__ import annotations

import math

#: Minor units as Yahoo and exchanges quote them -> (ISO 4217 major code, units per major unit).
MINOR: dict[str, tuple[str, int]] = {
    "GBp": ("GBP", 100),
    "GBX": ("GBP", 100),
    "ZAc": ("ZAR", 100),
    "ZAC": ("ZAR", 100),
    "ILA": ("ILS", 100),
}

#: Display prefix of the major currencies we list; other ISO codes are shown as "CODE 1.23".
SYMBOLS: dict[str, str] = {
    "USD": "$",
    "GBP": "£",
    "EUR": "€",
    "JPY": "¥",
    "CNY": "CN¥",
    "HKD": "HK$",
    "CAD": "CA$",
    "AUD": "A$",
    "NZD": "NZ$",
    "SGD": "S$",
    "TWD": "NT$",
    "INR": "₹",
    "KRW": "₩",
    "ILS": "₪",
    "BRL": "R$",
    "MXN": "MX$",
    "ZAR": "R ",
}

#: ISO 4217 codes of the markets we list and the common quote currencies (crypto quotes included).
ISO: frozenset[str] = frozenset(
    SYMBOLS
    | {c: "" for c in "CHF SEK NOK DKK PLN TRY CZK HUF ARS CLP MYR THB IDR PHP RUB SAR AED".split()}
    | {c: "" for c in ("USDT", "USDC", "BTC", "ETH")}
)

#: Currencies quoted without decimals in everyday use.
NO_DECIMALS = frozenset({"JPY", "KRW", "IDR", "CLP", "HUF", "TWD"})


def major(value: float, code: str | None) -> tuple[float, str | None]:
    """(value in major units, ISO code) of a price quoted in ``code``; ``(value, None)`` when the code
    is unknown (see the module)."""
    if code in MINOR:
        iso, units = MINOR[code]
        return value / units, iso
    if code in ISO:
        return value, code
    return value, None


def major_code(code: str | None) -> str | None:
    """The ISO code a quoted currency is shown in (``GBp`` -> ``GBP``), None when unknown."""
    return major(1.0, code)[1]


def decimals(value: float, code: str | None) -> int:
    """The decimals ``money`` shows a price of ``value`` (quoted in ``code``) with: 2; 0 for a
    yen-like currency from 100; 4 below 1 (penny stocks). A change is shown with its price's decimals
    (a $0.27 move of a $204 stock reads "+$0.27", not "+$0.2700")."""
    amount, iso = major(value, code)
    return 0 if iso in NO_DECIMALS and abs(amount) >= 100 else 2 if abs(amount) >= 1 else 4


def money(value: float | None, code: str | None, dash: str = "—", digits: int | None = None) -> str:
    """A quoted price as text in major units with its symbol (see the module); ``dash`` when missing.
    ``digits`` fixes the decimals (4 for FX rates); by default 2 (0 for yen-like, 4 below 1)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return dash
    amount, iso = major(float(value), code)
    if digits is None:
        digits = decimals(float(value), code)
    text = f"{abs(amount):,.{digits}f}"
    sign = "-" if amount < 0 else ""
    if iso is None:
        return f"{sign}{text} (unit unknown)"
    prefix = SYMBOLS.get(iso)
    if prefix:
        return f"{sign}{prefix}{text}"
    return f"{sign}{iso} {text}"
