"""Sample tools for the fork check: an outdoor-gear shop's inventory API and a unit and currency
converter. Not part of the agent's own tools (tools/): `make fork-check` builds the graph with
these alone, as a fork would. The data is fixed and offline, so every answer can be checked."""

import asyncio
import re

from expressway.toolbox import read_only

# sku: (name, category, unit price in USD, shipping weight in kg)
CATALOG = {
    "SKU-1001": ("Trail Runner 2 shoes", "footwear", 129.00, 0.8),
    "SKU-1002": ("Summit 40L backpack", "bags", 189.50, 1.4),
    "SKU-1003": ("Glacier down jacket", "apparel", 249.00, 0.9),
    "SKU-1004": ("Ridge trekking poles", "gear", 79.95, 0.5),
    "SKU-1005": ("Basecamp 3 tent", "shelter", 449.00, 3.2),
    "SKU-1006": ("Aurora headlamp", "gear", 39.00, 0.1),
    "SKU-1007": ("Canyon water filter", "gear", 59.90, 0.3),
}
WAREHOUSES = ("Rotterdam", "Denver", "Osaka")
# Units on hand per SKU, in the order of WAREHOUSES.
STOCK = {
    "SKU-1001": (140, 85, 0),
    "SKU-1002": (32, 0, 18),
    "SKU-1003": (0, 57, 23),
    "SKU-1004": (64, 120, 41),
    "SKU-1005": (9, 12, 4),
    "SKU-1006": (300, 210, 0),
    "SKU-1007": (75, 0, 60),
}
# Business days from a warehouse to a destination country.
DELIVERY_DAYS = {
    "Rotterdam": {"netherlands": 1, "germany": 2, "france": 3, "united kingdom": 4, "spain": 4},
    "Denver": {"united states": 3, "canada": 5, "mexico": 6},
    "Osaka": {"japan": 1, "south korea": 3, "australia": 6, "singapore": 4},
}
# Units per US dollar, fixed on 2026-11-01 so answers are reproducible.
USD_RATES = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 151.4, "CAD": 1.37, "AUD": 1.52}
_SKU = re.compile(r"SKU-\d{4}", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+")


def _match_sku(product: str) -> str | None:
    """A SKU written anywhere in `product`, or the product whose name shares the most words."""
    code = _SKU.search(product)
    if code:
        return code.group(0).upper()
    words = set(_WORD.findall(product.lower())) - {"the", "a", "an", "of"}
    scored = [
        (len(words & set(_WORD.findall(name.lower()))), sku) for sku, (name, *_) in CATALOG.items()
    ]
    best, sku = max(scored)
    return sku if best else None


def _warehouse(name: str) -> str | None:
    return next((w for w in WAREHOUSES if w.lower() in name.lower()), None)


@read_only
def find_product(name: str) -> str:
    """Find a product in the catalog by name or SKU and return its SKU, name, category, unit
    price in USD and shipping weight in kg. Example: find_product(name="Basecamp tent")."""
    sku = _match_sku(name)
    if sku not in CATALOG:
        listed = ", ".join(entry[0] for entry in CATALOG.values())
        return f"no product matches {name!r}; the catalog has: {listed}"
    product, category, price, weight = CATALOG[sku]
    return f"{sku} {product} ({category}): {price:.2f} USD, {weight} kg"


@read_only
async def stock_level(product: str, warehouse: str = "all") -> str:
    """Units in stock of a product (a SKU like SKU-1005 or a product name) in one warehouse
    (Rotterdam, Denver or Osaka) or in "all" of them. Example: stock_level(product="Basecamp 3
    tent", warehouse="Denver")."""
    await asyncio.sleep(0.05)  # a network call in a real inventory API
    sku = _match_sku(product)
    if sku not in STOCK:
        return f"no product matches {product!r}"
    name = CATALOG[sku][0]
    counts = dict(zip(WAREHOUSES, STOCK[sku], strict=True))
    chosen = _warehouse(warehouse)
    if chosen:
        return f"{name} ({sku}) in {chosen}: {counts[chosen]} units"
    if warehouse.strip().lower() not in {"", "all", "any", "total"}:
        return f"unknown warehouse {warehouse!r}; use one of {', '.join(WAREHOUSES)} or all"
    each = ", ".join(f"{place} {count}" for place, count in counts.items())
    return f"{name} ({sku}): {sum(counts.values())} units in all ({each})"


@read_only
def delivery_estimate(warehouse: str, country: str) -> str:
    """Business days to deliver from a warehouse (Rotterdam, Denver or Osaka) to a country.
    Example: delivery_estimate(warehouse="Rotterdam", country="Germany")."""
    chosen = _warehouse(warehouse)
    if chosen is None:
        return f"unknown warehouse {warehouse!r}; use one of {', '.join(WAREHOUSES)}"
    days = DELIVERY_DAYS[chosen].get(country.strip().lower())
    if days is None:
        served = ", ".join(country.title() for country in DELIVERY_DAYS[chosen])
        return f"{chosen} does not ship to {country}; it ships to {served}"
    return f"from {chosen} to {country.strip().title()}: {days} business days"


# Factor to the base unit of each kind (metre, kilogram, litre).
_UNITS = {
    "length": {"m": 1, "cm": 0.01, "mm": 0.001, "km": 1000, "in": 0.0254, "ft": 0.3048,
               "yd": 0.9144, "mi": 1609.344},
    "mass": {"kg": 1, "g": 0.001, "lb": 0.45359237, "oz": 0.028349523125},
    "volume": {"l": 1, "ml": 0.001, "gal": 3.785411784, "qt": 0.946352946, "floz": 0.0295735296},
}  # fmt: skip
_ALIASES = {
    "meter": "m", "meters": "m", "metre": "m", "metres": "m", "centimeters": "cm",
    "centimeter": "cm", "millimeters": "mm", "kilometers": "km", "kilometer": "km",
    "inch": "in", "inches": "in", "foot": "ft", "feet": "ft", "yard": "yd", "yards": "yd",
    "mile": "mi", "miles": "mi", "kilogram": "kg", "kilograms": "kg", "kilo": "kg", "kilos": "kg",
    "gram": "g", "grams": "g", "pound": "lb", "pounds": "lb", "lbs": "lb", "ounce": "oz",
    "ounces": "oz", "liter": "l", "liters": "l", "litre": "l", "litres": "l", "milliliters": "ml",
    "gallon": "gal", "gallons": "gal", "quart": "qt", "quarts": "qt", "fl oz": "floz",
    "celsius": "c", "°c": "c", "fahrenheit": "f", "°f": "f", "kelvin": "k",
}  # fmt: skip
_TO_KELVIN = {"c": lambda v: v + 273.15, "f": lambda v: (v - 32) * 5 / 9 + 273.15, "k": float}
_FROM_KELVIN = {"c": lambda k: k - 273.15, "f": lambda k: (k - 273.15) * 9 / 5 + 32, "k": float}


def _unit(name: str) -> str:
    key = name.strip().lower()
    return _ALIASES.get(key, key)


@read_only
def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a length, mass, volume or temperature between units (m, cm, km, in, ft, mi, kg,
    g, lb, oz, l, ml, gal, qt, celsius, fahrenheit, kelvin). Example: convert_units(value=25,
    from_unit="kg", to_unit="lb")."""
    source, target = _unit(from_unit), _unit(to_unit)
    if source in _TO_KELVIN and target in _TO_KELVIN:
        result = _FROM_KELVIN[target](_TO_KELVIN[source](value))
        return f"{value:g} {from_unit} = {result:.2f} {to_unit}"
    for factors in _UNITS.values():
        if source in factors and target in factors:
            result = value * factors[source] / factors[target]
            return f"{value:g} {from_unit} = {result:.2f} {to_unit}"
    return f"cannot convert {from_unit!r} to {to_unit!r}: both must measure the same thing"


@read_only
async def convert_currency(amount: float, from_currency: str, to_currency: str) -> str:
    """Convert money between currencies (USD, EUR, GBP, JPY, CAD, AUD) at the rates of
    2026-11-01. Example: convert_currency(amount=449, from_currency="USD", to_currency="EUR")."""
    await asyncio.sleep(0.05)  # a rates service in a real deployment
    source, target = from_currency.strip().upper(), to_currency.strip().upper()
    unknown = [code for code in (source, target) if code not in USD_RATES]
    if unknown:
        return f"unknown currency {unknown[0]!r}; use one of {', '.join(USD_RATES)}"
    result = amount / USD_RATES[source] * USD_RATES[target]
    return f"{amount:,.2f} {source} = {result:,.2f} {target} (rate of 2026-11-01)"


TOOLS = [find_product, stock_level, delivery_estimate, convert_units, convert_currency]
