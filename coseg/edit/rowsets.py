"""Sets of Gaussian rows in edit operations: exact, compact, JSON-able.

Rows never move while editing (a delete flips a mask, a duplicate appends),
so an operation on "these splats" can name their row indices and replay on
the same source rebuilds the same scene. A row set is stored as
``{"n": N, "bits": base64(zlib(packbits(mask)))}``: 200k rows take at most
25 kB before compression and usually a few hundred bytes after it (selections
are spatially, and so in row order, clustered).
"""

from __future__ import annotations

import base64
import zlib

import numpy as np


def encode_rows(rows: np.ndarray, n: int) -> dict:
    """[M] row indices (< n) -> the JSON form above."""
    mask = np.zeros(n, bool)
    mask[np.asarray(rows, np.int64)] = True
    packed = np.packbits(mask).tobytes()
    return {"n": int(n), "bits": base64.b64encode(zlib.compress(packed, 6)).decode("ascii")}


def decode_rows(spec: dict, n: int) -> np.ndarray:
    """The sorted row indices of a JSON row set, checked against the model's `n` rows.

    Raises:
        ValueError: the set was made for more rows than the model has, or is corrupt.
    """
    try:
        size = int(spec["n"])
        packed = np.frombuffer(zlib.decompress(base64.b64decode(spec["bits"])), np.uint8)
    except (KeyError, TypeError, ValueError, zlib.error) as e:
        raise ValueError(f"corrupt row set ({e})") from None
    if size > n:
        raise ValueError(f"row set made for {size} Gaussians, the model has {n}")
    rows = np.flatnonzero(np.unpackbits(packed, count=size).astype(bool))
    return rows.astype(np.int64)


def unique_rows(rows: np.ndarray, n: int) -> np.ndarray:
    """Sorted distinct row indices (< n) of `rows`, in O(n) through a mask (``np.unique`` sorts or hashes)."""
    rows = np.asarray(rows, np.int64).reshape(-1)
    if len(rows) < 2 or np.all(rows[1:] > rows[:-1]):
        return rows
    mask = np.zeros(n, bool)
    mask[rows] = True
    return np.flatnonzero(mask)
