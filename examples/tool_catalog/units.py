"""Unit conversion tools: real offline implementations with exact factors.

Each linear quantity is a table of "how many base units in one of this unit";
conversion is value * factor[from] / factor[to]. Temperature and fuel economy are
not linear and have their own formulas.
"""

from __future__ import annotations

from typing import Literal

from langchain_core.tools import ToolException

from ._common import catalog_tool

LengthUnit = Literal["mm", "cm", "m", "km", "in", "ft", "yd", "mi", "nmi"]
MassUnit = Literal["mg", "g", "kg", "t", "oz", "lb", "st"]
VolumeUnit = Literal["ml", "l", "m3", "tsp", "tbsp", "cup", "fl_oz", "pint", "quart", "gallon"]
SpeedUnit = Literal["m/s", "km/h", "mph", "knot", "ft/s"]
AreaUnit = Literal["cm2", "m2", "km2", "ha", "acre", "ft2", "yd2", "mi2"]
DataUnit = Literal["bit", "B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"]
DurationUnit = Literal["ms", "s", "min", "h", "day", "week", "year"]
PressureUnit = Literal["Pa", "kPa", "bar", "psi", "atm", "mmHg"]
EnergyUnit = Literal["J", "kJ", "cal", "kcal", "Wh", "kWh", "BTU"]

# base units: metre, gram, litre, metre/second, square metre, byte, second, pascal, joule
LENGTH = {"mm": 0.001, "cm": 0.01, "m": 1.0, "km": 1000.0, "in": 0.0254, "ft": 0.3048,
          "yd": 0.9144, "mi": 1609.344, "nmi": 1852.0}
MASS = {"mg": 0.001, "g": 1.0, "kg": 1000.0, "t": 1e6, "oz": 28.349523125, "lb": 453.59237, "st": 6350.29318}
# US customary kitchen and liquid measures
VOLUME = {"ml": 0.001, "l": 1.0, "m3": 1000.0, "tsp": 0.00492892159375, "tbsp": 0.01478676478125,
          "cup": 0.2365882365, "fl_oz": 0.0295735295625, "pint": 0.473176473, "quart": 0.946352946,
          "gallon": 3.785411784}
SPEED = {"m/s": 1.0, "km/h": 1 / 3.6, "mph": 0.44704, "knot": 1852 / 3600, "ft/s": 0.3048}
AREA = {"cm2": 1e-4, "m2": 1.0, "km2": 1e6, "ha": 1e4, "acre": 4046.8564224, "ft2": 0.09290304,
        "yd2": 0.83612736, "mi2": 2589988.110336}
DATA = {"bit": 0.125, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
        "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}
DURATION = {"ms": 0.001, "s": 1, "min": 60, "h": 3600, "day": 86400, "week": 604800, "year": 31557600}
PRESSURE = {"Pa": 1.0, "kPa": 1000.0, "bar": 1e5, "psi": 6894.757293168, "atm": 101325.0, "mmHg": 133.322387415}
ENERGY = {"J": 1.0, "kJ": 1000.0, "cal": 4.184, "kcal": 4184.0, "Wh": 3600.0, "kWh": 3.6e6, "BTU": 1055.05585262}


def _convert(value: float, from_unit: str, to_unit: str, table: dict[str, float], kind: str) -> dict:
    for u in (from_unit, to_unit):
        if u not in table:
            raise ToolException(f"unknown {kind} unit {u!r}: allowed are {', '.join(table)}")
    out = value * table[from_unit] / table[to_unit]
    return {"value": value, "from_unit": from_unit, "to_unit": to_unit, "result": float(f"{out:.10g}")}


@catalog_tool
def convert_length(value: float, from_unit: LengthUnit, to_unit: LengthUnit) -> dict:
    """Convert a length or distance between metric and imperial units.

    Args:
        value: The length to convert.
        from_unit: Unit of `value`: mm, cm, m, km, in, ft, yd, mi (mile) or nmi (nautical mile).
        to_unit: Unit to convert to, same choices.

    Returns:
        {"value", "from_unit", "to_unit", "result"}.

    Example:
        convert_length(6, "ft", "m") -> {..., "result": 1.8288}
    """
    return _convert(value, from_unit, to_unit, LENGTH, "length")


@catalog_tool
def miles_to_kilometers(miles: float) -> dict:
    """Convert a road or running distance from miles to kilometres.

    Args:
        miles: The distance in statute miles.

    Returns:
        {"miles": float, "kilometers": float}.
    """
    return {"miles": miles, "kilometers": float(f"{miles * 1.609344:.10g}")}


@catalog_tool
def kilometers_to_miles(kilometers: float) -> dict:
    """Convert a road or running distance from kilometres to miles.

    Args:
        kilometers: The distance in kilometres.

    Returns:
        {"kilometers": float, "miles": float}.
    """
    return {"kilometers": kilometers, "miles": float(f"{kilometers / 1.609344:.10g}")}


@catalog_tool
def convert_mass(value: float, from_unit: MassUnit, to_unit: MassUnit) -> dict:
    """Convert a mass or weight between metric and imperial units.

    Args:
        value: The mass to convert.
        from_unit: Unit of `value`: mg, g, kg, t (metric tonne), oz, lb (pound) or st (stone).
        to_unit: Unit to convert to, same choices.

    Returns:
        {"value", "from_unit", "to_unit", "result"}.

    Example:
        convert_mass(10, "lb", "kg") -> {..., "result": 4.5359237}
    """
    return _convert(value, from_unit, to_unit, MASS, "mass")


@catalog_tool
def convert_temperature(value: float, from_unit: Literal["C", "F", "K"], to_unit: Literal["C", "F", "K"]) -> dict:
    """Convert a temperature between Celsius, Fahrenheit and Kelvin.

    Args:
        value: The temperature to convert.
        from_unit: Scale of `value`: "C" (Celsius), "F" (Fahrenheit) or "K" (Kelvin).
        to_unit: Scale to convert to, same choices.

    Returns:
        {"value", "from_unit", "to_unit", "result"}.

    Example:
        convert_temperature(100, "C", "F") -> {..., "result": 212}
    """
    to_k = {"C": lambda v: v + 273.15, "F": lambda v: (v - 32) * 5 / 9 + 273.15, "K": lambda v: v}
    from_k = {"C": lambda k: k - 273.15, "F": lambda k: (k - 273.15) * 9 / 5 + 32, "K": lambda k: k}
    for u in (from_unit, to_unit):
        if u not in to_k:
            raise ToolException(f"unknown temperature unit {u!r}: allowed are C, F, K")
    kelvin = to_k[from_unit](value)
    if kelvin < 0:
        raise ToolException(f"{value} {from_unit} is below absolute zero")
    out = round(from_k[to_unit](kelvin), 10)
    return {"value": value, "from_unit": from_unit, "to_unit": to_unit, "result": float(f"{out:.10g}")}


@catalog_tool
def convert_volume(value: float, from_unit: VolumeUnit, to_unit: VolumeUnit) -> dict:
    """Convert a volume or liquid measure (US customary cups, gallons...) and metric litres.

    Args:
        value: The volume to convert.
        from_unit: Unit of `value`: ml, l, m3, tsp, tbsp, cup, fl_oz, pint, quart or gallon (US).
        to_unit: Unit to convert to, same choices.

    Returns:
        {"value", "from_unit", "to_unit", "result"}.
    """
    return _convert(value, from_unit, to_unit, VOLUME, "volume")


@catalog_tool
def convert_speed(value: float, from_unit: SpeedUnit, to_unit: SpeedUnit) -> dict:
    """Convert a speed between m/s, km/h, mph, knots and ft/s.

    Args:
        value: The speed to convert.
        from_unit: Unit of `value`: "m/s", "km/h", "mph", "knot" or "ft/s".
        to_unit: Unit to convert to, same choices.

    Returns:
        {"value", "from_unit", "to_unit", "result"}.
    """
    return _convert(value, from_unit, to_unit, SPEED, "speed")


@catalog_tool
def convert_area(value: float, from_unit: AreaUnit, to_unit: AreaUnit) -> dict:
    """Convert an area, e.g. square feet to square metres or acres to hectares.

    Args:
        value: The area to convert.
        from_unit: Unit of `value`: cm2, m2, km2, ha (hectare), acre, ft2, yd2 or mi2.
        to_unit: Unit to convert to, same choices.

    Returns:
        {"value", "from_unit", "to_unit", "result"}.
    """
    return _convert(value, from_unit, to_unit, AREA, "area")


@catalog_tool
def convert_data_size(value: float, from_unit: DataUnit, to_unit: DataUnit) -> dict:
    """Convert a digital storage or file size: bits, bytes, decimal KB/MB/GB/TB, binary KiB/MiB/GiB/TiB.

    Args:
        value: The size to convert.
        from_unit: Unit of `value`: bit, B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024).
        to_unit: Unit to convert to, same choices.

    Returns:
        {"value", "from_unit", "to_unit", "result"}.

    Example:
        convert_data_size(1, "GiB", "MB") -> {..., "result": 1073.741824}
    """
    return _convert(value, from_unit, to_unit, DATA, "data size")


@catalog_tool
def convert_duration(value: float, from_unit: DurationUnit, to_unit: DurationUnit) -> dict:
    """Convert a length of time between milliseconds, seconds, minutes, hours, days, weeks and years.

    Args:
        value: The duration to convert.
        from_unit: Unit of `value`: ms, s, min, h, day, week or year (365.25 days).
        to_unit: Unit to convert to, same choices.

    Returns:
        {"value", "from_unit", "to_unit", "result"}.
    """
    return _convert(value, from_unit, to_unit, DURATION, "duration")


@catalog_tool
def convert_pressure(value: float, from_unit: PressureUnit, to_unit: PressureUnit) -> dict:
    """Convert a pressure, e.g. tyre pressure psi to bar.

    Args:
        value: The pressure to convert.
        from_unit: Unit of `value`: Pa, kPa, bar, psi, atm or mmHg.
        to_unit: Unit to convert to, same choices.

    Returns:
        {"value", "from_unit", "to_unit", "result"}.
    """
    return _convert(value, from_unit, to_unit, PRESSURE, "pressure")


@catalog_tool
def convert_energy(value: float, from_unit: EnergyUnit, to_unit: EnergyUnit) -> dict:
    """Convert energy between joules, calories, kilocalories (food calories), watt-hours and BTU.

    Args:
        value: The energy to convert.
        from_unit: Unit of `value`: J, kJ, cal, kcal, Wh, kWh or BTU.
        to_unit: Unit to convert to, same choices.

    Returns:
        {"value", "from_unit", "to_unit", "result"}.
    """
    return _convert(value, from_unit, to_unit, ENERGY, "energy")


@catalog_tool
def convert_fuel_economy(
    value: float,
    from_unit: Literal["mpg_us", "mpg_uk", "l_per_100km", "km_per_l"],
    to_unit: Literal["mpg_us", "mpg_uk", "l_per_100km", "km_per_l"],
) -> dict:
    """Convert car fuel economy between miles per gallon and litres per 100 km.

    Args:
        value: The fuel economy to convert; must be > 0.
        from_unit: Unit of `value`: mpg_us, mpg_uk (imperial gallon), l_per_100km or km_per_l.
        to_unit: Unit to convert to, same choices.

    Returns:
        {"value", "from_unit", "to_unit", "result"}.
    """
    # km per litre for one unit of each; l/100km is inverse so handled separately
    kmpl = {"mpg_us": 1.609344 / 3.785411784, "mpg_uk": 1.609344 / 4.54609, "km_per_l": 1.0}
    allowed = [*kmpl, "l_per_100km"]
    for u in (from_unit, to_unit):
        if u not in allowed:
            raise ToolException(f"unknown fuel economy unit {u!r}: allowed are {', '.join(allowed)}")
    if value <= 0:
        raise ToolException("value must be > 0")
    km_per_l = 100 / value if from_unit == "l_per_100km" else value * kmpl[from_unit]
    out = 100 / km_per_l if to_unit == "l_per_100km" else km_per_l / kmpl[to_unit]
    return {"value": value, "from_unit": from_unit, "to_unit": to_unit, "result": float(f"{out:.10g}")}
