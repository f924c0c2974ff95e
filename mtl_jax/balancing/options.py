"""Checks of the balancing methods' options: plain Python values, refused up front with one
ValueError naming the option (before anything compiles)."""


def number(name: str, value, low: float, strict: bool) -> float:
  """`value` as a float if it is a number ≥ low (> low when strict); else a ValueError."""
  ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  if not ok or value < low or (strict and value == low):
    raise ValueError(
      f'option {name!r} must be a number {">" if strict else "≥"} {low:g}, got {value!r}'
    )
  return float(value)
