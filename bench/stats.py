"""Summary statistics for repeated measurements: median, min-max and interquartile range."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """A set of repeated measurements of one quantity, in one unit."""

    values: tuple[float, ...]
    unit: str

    @classmethod
    def of(cls, values: list[float] | tuple[float, ...], unit: str) -> Summary:
        if not values:
            raise ValueError("no measurements")
        return cls(tuple(float(v) for v in values), unit)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    @property
    def iqr(self) -> tuple[float, float]:
        """First and third quartiles (inclusive method; both equal the value when n == 1)."""
        if self.n == 1:
            return self.values[0], self.values[0]
        q = statistics.quantiles(self.values, n=4, method="inclusive")
        return q[0], q[2]

    def scaled(self, factor: float, unit: str) -> Summary:
        return Summary(tuple(v * factor for v in self.values), unit)


def fmt_number(x: float) -> str:
    """A compact rendering with about three significant digits."""
    ax = abs(x)
    if ax == 0:
        return "0"
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def fmt_value(x: float, unit: str) -> str:
    if unit == "x":
        return f"{fmt_number(x)}x"
    return f"{fmt_number(x)} {unit}".rstrip()
