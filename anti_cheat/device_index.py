"""Device ids → dense indexes, compactly: a sorted block of fixed-width ids for the devices known when the
index was built (a fleet of a million ids costs their bytes, not a million Python strings and dict
entries), and a small dict for devices first seen later.

An id's index never changes: the sorted block keeps positions 0 … n-1, later ids get n, n+1, … in
arrival order. A lookup is a binary search (a few µs); the ids asked for most are kept in a bounded
dict in front of it, cleared when full, so a hostile stream of made-up ids costs memory only up to
that bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import overload

import numpy as np
import numpy.typing as npt

HOT_MAX = 1 << 16  # ids kept in the dict in front of the binary search


def sorted_ids(names: Iterable[str]) -> npt.NDArray[np.bytes_]:
    """Ids as one sorted fixed-width bytes array (UTF-8); raises ValueError on a duplicate or a NUL."""
    encoded = [n.encode() for n in names]
    if any(b"\0" in n for n in encoded):
        raise ValueError("a device id holds a NUL character")  # numpy would strip a trailing one
    return check_ids(np.sort(np.array(encoded, dtype=np.bytes_)))


def check_ids(ids: npt.NDArray[np.bytes_]) -> npt.NDArray[np.bytes_]:
    """``ids`` if it can be an index's block: sorted and unique."""
    if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):
        dup = np.flatnonzero(ids[1:] <= ids[:-1])[0]
        raise ValueError(f"device ids not sorted and unique near {ids[dup + 1].decode()!r}")
    return ids


class DeviceIndex:
    """Dense indexes of device ids (see the module docstring)."""

    def __init__(self, ids: npt.NDArray[np.bytes_] | None = None) -> None:
        """``ids``: the sorted, unique block (:func:`sorted_ids`); its devices get indexes 0 … len-1."""
        self.ids: npt.NDArray[np.bytes_] = np.zeros(0, dtype="S1") if ids is None else ids
        self._base = len(self.ids)
        self._later: dict[str, int] = {}
        self._later_names: list[str] = []
        self._hot: dict[str, int] = {}

    def __len__(self) -> int:
        return self._base + len(self._later_names)

    def get(self, name: str) -> int | None:
        """The index of ``name``, or None."""
        i = self._hot.get(name)
        if i is not None:
            return i
        i = self._later.get(name)
        if i is None and self._base:
            key = name.encode()
            pos = int(np.searchsorted(self.ids, key))
            if pos < self._base and self.ids[pos] == key:
                i = pos
        if i is not None:
            if len(self._hot) >= HOT_MAX:
                self._hot.clear()
            self._hot[name] = i
        return i

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __getitem__(self, name: str) -> int:
        i = self.get(name)
        if i is None:
            raise KeyError(name)
        return i

    def add(self, name: str) -> int:
        """The index of ``name``, adding it at the end if new."""
        i = self.get(name)
        if i is None:
            i = self._later[name] = len(self)
            self._later_names.append(name)
        return i

    def positions(self, ids: npt.NDArray[np.bytes_]) -> npt.NDArray[np.intp]:
        """The indexes of many ids at once (-1: not in the index), ``ids`` a bytes array."""
        out = np.full(len(ids), -1, dtype=np.intp)
        if self._base and len(ids):
            pos = np.minimum(np.searchsorted(self.ids, ids), self._base - 1)
            found = self.ids[pos] == ids
            out[found] = pos[found]
        for k in np.flatnonzero(out < 0).tolist() if self._later else ():
            out[k] = self._later.get(ids[k].decode(), -1)
        return out

    def name(self, i: int) -> str:
        return str(self.ids[i].decode()) if i < self._base else self._later_names[i - self._base]

    @property
    def names(self) -> DeviceNames:
        """The ids in index order, as a sequence (``names[i]`` is the device of index ``i``)."""
        return DeviceNames(self)


class DeviceNames(Sequence[str]):
    """A read-only view of a :class:`DeviceIndex` in index order."""

    def __init__(self, index: DeviceIndex) -> None:
        self._index = index

    def __len__(self) -> int:
        return len(self._index)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        n = len(self._index)
        if isinstance(i, slice):
            return [self._index.name(k) for k in range(*i.indices(n))]
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        return self._index.name(i)

    def __iter__(self) -> Iterator[str]:
        return (self._index.name(k) for k in range(len(self._index)))
