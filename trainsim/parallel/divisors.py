"""Divisors of a chip count by prime factorisation.

Trial division by every candidate up to n costs O(n) (a billion chips: minutes); factorising by trial division
up to sqrt(n) costs O(sqrt(n)) (10^7 chips: ~1,600 steps) and a number below 10^7 has at most 448 divisors,
so listing them from the factorisation is cheap.
"""
from __future__ import annotations


def factorise(n: int) -> dict[int, int]:
    """Prime factorisation ``{p: exponent}`` of ``n >= 1`` by trial division up to sqrt(n)."""
    if n < 1:
        raise ValueError(f"factorise needs n >= 1, got {n}")
    out: dict[int, int] = {}
    for p in (2, 3):
        while n % p == 0:
            out[p] = out.get(p, 0) + 1
            n //= p
    p = 5
    while p * p <= n:  # candidates 6k - 1 and 6k + 1
        for q in (p, p + 2):
            while n % q == 0:
                out[q] = out.get(q, 0) + 1
                n //= q
        p += 6
    if n > 1:
        out[n] = out.get(n, 0) + 1
    return out


def divisors(n: int) -> list[int]:
    """All divisors of ``n >= 1`` in ascending order, built from :func:`factorise`."""
    divs = [1]
    for p, e in factorise(n).items():
        divs = [d * p**k for d in divs for k in range(e + 1)]
    return sorted(divs)
