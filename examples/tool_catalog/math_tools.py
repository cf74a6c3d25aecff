"""Arithmetic, statistics and finance tools: real offline implementations.

Results are returned as `{"result": number}` (or a few named numbers), with float
noise such as 0.30000000000000004 rounded away and whole numbers as ints.
"""

from __future__ import annotations

import ast
import math
import operator
import statistics

from langchain_core.tools import ToolException

from ._common import catalog_tool


def _clean(x: float) -> float | int:
    """Round away float noise; whole numbers become ints (8.0 -> 8)."""
    if isinstance(x, int) or not math.isfinite(x):
        return x
    x = round(x, 10)
    return int(x) if x.is_integer() and abs(x) < 1e15 else x


def _need_numbers(numbers: list[float]) -> None:
    if not numbers:
        raise ToolException("numbers is empty: give at least one number, e.g. [1, 2, 3]")


@catalog_tool
def add_numbers(a: float, b: float) -> dict:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.

    Returns:
        {"result": a + b}.

    Example:
        add_numbers(2, 3.5) -> {"result": 5.5}
    """
    return {"result": _clean(a + b)}


@catalog_tool
def subtract_numbers(a: float, b: float) -> dict:
    """Subtract the second number from the first.

    Args:
        a: The number to subtract from.
        b: The number to subtract.

    Returns:
        {"result": a - b}.
    """
    return {"result": _clean(a - b)}


@catalog_tool
def multiply_numbers(a: float, b: float) -> dict:
    """Multiply two numbers.

    Args:
        a: The first factor.
        b: The second factor.

    Returns:
        {"result": a * b}.
    """
    return {"result": _clean(a * b)}


@catalog_tool
def divide_numbers(dividend: float, divisor: float) -> dict:
    """Divide one number by another; dividing by zero is an error.

    Args:
        dividend: The number to be divided.
        divisor: The number to divide by; must not be 0.

    Returns:
        {"result": dividend / divisor}.

    Example:
        divide_numbers(10, 4) -> {"result": 2.5}
    """
    if divisor == 0:
        raise ToolException("cannot divide by zero: divisor must be a non-zero number")
    return {"result": _clean(dividend / divisor)}


@catalog_tool
def modulo(dividend: int, divisor: int) -> dict:
    """Integer division with remainder (quotient and modulo).

    Args:
        dividend: The whole number to divide.
        divisor: The whole number to divide by; must not be 0.

    Returns:
        {"quotient": dividend // divisor, "remainder": dividend % divisor}.
    """
    if divisor == 0:
        raise ToolException("cannot divide by zero: divisor must be a non-zero integer")
    return {"quotient": dividend // divisor, "remainder": dividend % divisor}


@catalog_tool
def power(base: float, exponent: float) -> dict:
    """Raise a number to a power (base ** exponent).

    Args:
        base: The base.
        exponent: The exponent; may be negative or fractional.

    Returns:
        {"result": base ** exponent}.

    Example:
        power(2, 10) -> {"result": 1024}
    """
    try:
        r = float(base) ** exponent
    except (OverflowError, ZeroDivisionError) as e:
        raise ToolException(f"power({base}, {exponent}) is not defined or too large: {e}") from None
    if isinstance(r, complex):
        raise ToolException(f"power({base}, {exponent}) is not a real number")
    return {"result": _clean(r)}


@catalog_tool
def square_root(x: float) -> dict:
    """Square root of a non-negative number.

    Args:
        x: The number; must be >= 0.

    Returns:
        {"result": sqrt(x)}.
    """
    if x < 0:
        raise ToolException(f"square root of negative number {x} is not real: x must be >= 0")
    return {"result": _clean(math.sqrt(x))}


@catalog_tool
def logarithm(x: float, base: float = 10.0) -> dict:
    """Logarithm of a positive number in any base (10 by default, use 2.718281828 for ln).

    Args:
        x: The number; must be > 0.
        base: The logarithm base; must be > 0 and not 1. Defaults to 10.

    Returns:
        {"result": log_base(x)}.
    """
    if x <= 0 or base <= 0 or base == 1:
        raise ToolException(f"log of {x} in base {base} is undefined: need x > 0, base > 0 and base != 1")
    return {"result": _clean(math.log(x, base))}


@catalog_tool
def percentage_of(percent: float, value: float) -> dict:
    """Compute a percentage of a value, e.g. 15% of 80.

    Args:
        percent: The percentage, as a number of percent (15 means 15%).
        value: The value to take the percentage of.

    Returns:
        {"result": value * percent / 100}.

    Example:
        percentage_of(15, 80) -> {"result": 12}
    """
    return {"result": _clean(value * percent / 100)}


@catalog_tool
def what_percent(part: float, whole: float) -> dict:
    """What percentage one number is of another, e.g. 12 is 15% of 80.

    Args:
        part: The part.
        whole: The whole; must not be 0.

    Returns:
        {"percent": part / whole * 100}.
    """
    if whole == 0:
        raise ToolException("whole must not be 0")
    return {"percent": _clean(part / whole * 100)}


@catalog_tool
def percent_change(old_value: float, new_value: float) -> dict:
    """Percentage increase or decrease from an old value to a new value.

    Args:
        old_value: The starting value; must not be 0.
        new_value: The ending value.

    Returns:
        {"percent_change": float} — positive for an increase, negative for a decrease.

    Example:
        percent_change(80, 100) -> {"percent_change": 25}
    """
    if old_value == 0:
        raise ToolException("old_value must not be 0: percent change from zero is undefined")
    return {"percent_change": _clean((new_value - old_value) / abs(old_value) * 100)}


@catalog_tool
def round_number(value: float, decimals: int = 0) -> dict:
    """Round a number to a given number of decimal places (half to even, like Python).

    Args:
        value: The number to round.
        decimals: How many digits after the decimal point; negative rounds to tens, hundreds...

    Returns:
        {"result": rounded number}.
    """
    return {"result": _clean(round(value, decimals))}


@catalog_tool
def sum_numbers(numbers: list[float]) -> dict:
    """Total of a list of numbers.

    Args:
        numbers: The numbers to add up, e.g. [4, 8, 15.5].

    Returns:
        {"sum": float, "count": int}.
    """
    return {"sum": _clean(math.fsum(numbers)), "count": len(numbers)}


@catalog_tool
def mean_of_numbers(numbers: list[float]) -> dict:
    """Arithmetic mean (average) of a list of numbers.

    Args:
        numbers: The numbers, at least one, e.g. [2, 4, 9].

    Returns:
        {"mean": float}.

    Example:
        mean_of_numbers([2, 4, 9]) -> {"mean": 5}
    """
    _need_numbers(numbers)
    return {"mean": _clean(statistics.fmean(numbers))}


@catalog_tool
def median_of_numbers(numbers: list[float]) -> dict:
    """Median (middle value) of a list of numbers.

    Args:
        numbers: The numbers, at least one; order does not matter.

    Returns:
        {"median": float}.
    """
    _need_numbers(numbers)
    return {"median": _clean(statistics.median(numbers))}


@catalog_tool
def standard_deviation(numbers: list[float], sample: bool = True) -> dict:
    """Standard deviation and variance of a list of numbers.

    Args:
        numbers: The numbers; at least two for a sample, one for a population.
        sample: True for the sample standard deviation (n - 1), False for the population one (n).

    Returns:
        {"stdev": float, "variance": float}.
    """
    if len(numbers) < (2 if sample else 1):
        raise ToolException("need at least two numbers for a sample standard deviation")
    sd = statistics.stdev(numbers) if sample else statistics.pstdev(numbers)
    return {"stdev": _clean(sd), "variance": _clean(sd * sd)}


@catalog_tool
def min_max_range(numbers: list[float]) -> dict:
    """Smallest value, largest value and range of a list of numbers.

    Args:
        numbers: The numbers, at least one.

    Returns:
        {"min": float, "max": float, "range": max - min}.
    """
    _need_numbers(numbers)
    lo, hi = min(numbers), max(numbers)
    return {"min": _clean(lo), "max": _clean(hi), "range": _clean(hi - lo)}


@catalog_tool
def factorial(n: int) -> dict:
    """Factorial n! of a non-negative whole number (n at most 170).

    Args:
        n: The whole number, 0 to 170.

    Returns:
        {"result": n!}.

    Example:
        factorial(5) -> {"result": 120}
    """
    if not 0 <= n <= 170:
        raise ToolException(f"n={n} is out of range: factorial needs 0 <= n <= 170")
    return {"result": math.factorial(n)}


@catalog_tool
def greatest_common_divisor(a: int, b: int) -> dict:
    """Greatest common divisor (GCD, highest common factor) of two whole numbers.

    Args:
        a: The first whole number.
        b: The second whole number.

    Returns:
        {"gcd": int}.
    """
    return {"gcd": math.gcd(a, b)}


@catalog_tool
def least_common_multiple(a: int, b: int) -> dict:
    """Least common multiple (LCM) of two whole numbers.

    Args:
        a: The first whole number.
        b: The second whole number.

    Returns:
        {"lcm": int}.
    """
    return {"lcm": math.lcm(a, b)}


@catalog_tool
def is_prime(n: int) -> dict:
    """Check whether a whole number is prime.

    Args:
        n: The whole number to test (up to about 10**12 is fast).

    Returns:
        {"n": n, "is_prime": bool, "smallest_factor": int or null}.
    """
    if n < 2:
        return {"n": n, "is_prime": False, "smallest_factor": None}
    for f in range(2, math.isqrt(n) + 1):
        if n % f == 0:
            return {"n": n, "is_prime": False, "smallest_factor": f}
    return {"n": n, "is_prime": True, "smallest_factor": None}


@catalog_tool
def compound_interest(principal: float, annual_rate_percent: float, years: float, compounds_per_year: int = 12) -> dict:
    """Future value of a savings amount with compound interest.

    Args:
        principal: The starting amount of money.
        annual_rate_percent: The yearly interest rate in percent (5 means 5% a year).
        years: How many years the money grows.
        compounds_per_year: How often interest is added per year (12 monthly, 1 yearly).

    Returns:
        {"future_value": float, "interest_earned": float}, rounded to cents.

    Example:
        compound_interest(1000, 5, 10, 1) -> {"future_value": 1628.89, "interest_earned": 628.89}
    """
    if compounds_per_year < 1:
        raise ToolException("compounds_per_year must be at least 1")
    fv = principal * (1 + annual_rate_percent / 100 / compounds_per_year) ** (compounds_per_year * years)
    return {"future_value": round(fv, 2), "interest_earned": round(fv - principal, 2)}


@catalog_tool
def loan_monthly_payment(principal: float, annual_rate_percent: float, years: float) -> dict:
    """Monthly payment of a fixed-rate loan or mortgage (amortized).

    Args:
        principal: The amount borrowed.
        annual_rate_percent: The yearly interest rate in percent (6.5 means 6.5%).
        years: The loan term in years.

    Returns:
        {"monthly_payment": float, "total_paid": float, "total_interest": float}, rounded to cents.
    """
    n = round(years * 12)
    if n < 1:
        raise ToolException("years must cover at least one month")
    r = annual_rate_percent / 100 / 12
    pay = principal / n if r == 0 else principal * r / (1 - (1 + r) ** -n)
    return {"monthly_payment": round(pay, 2), "total_paid": round(pay * n, 2), "total_interest": round(pay * n - principal, 2)}


@catalog_tool
def body_mass_index(weight_kg: float, height_cm: float) -> dict:
    """Body mass index (BMI) from weight and height, with its WHO category.

    Args:
        weight_kg: Body weight in kilograms.
        height_cm: Height in centimetres.

    Returns:
        {"bmi": float, "category": "underweight" | "normal" | "overweight" | "obese"}.
    """
    if weight_kg <= 0 or height_cm <= 0:
        raise ToolException("weight_kg and height_cm must be positive")
    bmi = weight_kg / (height_cm / 100) ** 2
    cat = "underweight" if bmi < 18.5 else "normal" if bmi < 25 else "overweight" if bmi < 30 else "obese"
    return {"bmi": round(bmi, 1), "category": cat}


_OPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
    ast.USub: operator.neg, ast.UAdd: operator.pos,
}


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 1000:
            raise ToolException("exponent too large (limit 1000)")
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.operand))
    raise ToolException("only numbers, + - * / // % ** and parentheses are allowed")


@catalog_tool
def evaluate_expression(expression: str) -> dict:
    """Calculator: evaluate an arithmetic expression with + - * / // % ** and parentheses.

    Args:
        expression: The expression, numbers and operators only, e.g. "(3 + 4) * 2 / 7".

    Returns:
        {"expression": str, "result": number}.

    Example:
        evaluate_expression("2 ** 8 - 6") -> {"expression": "2 ** 8 - 6", "result": 250}
    """
    try:
        tree = ast.parse(expression, mode="eval")
        value = _eval(tree.body)
    except SyntaxError:
        raise ToolException(f"cannot parse {expression!r} as arithmetic") from None
    except ZeroDivisionError:
        raise ToolException("division by zero in expression") from None
    return {"expression": expression, "result": _clean(value)}
