"""Reference prices learned from the market itself: per market, per commodity, per market day.

A price-scaling cheat keys the unit price at a tenth or a hundredth of what the commodity sells for.
"What it sells for" is not one city-wide number: each market has its prices, and they change from day to
day (and within a day, down to a clearance at closing). The reference for a sale on day D is the median
unit price of the same commodity in the same market on the latest earlier day with at least
``price_reference_min_sales`` sales; before a market has such a day, the static list
(``ScaleFacts.commodity_median``) is the prior. A median of a whole day is robust to a clearance hour and
to one cheating stall.

Prices are counted in histograms of log10(price) with :data:`BINS_PER_DECADE` bins per decade, per
(market, commodity), for the current day; a day ends when the first sale of a later day arrives. Counts
add up, so a stream scored in one batch or in many learns the same references. Sales of a day that has
already ended (late arrivals) are judged against the reference in force and do not count.
"""

from __future__ import annotations

import io
import json

import numpy as np
import numpy.typing as npt

from .facts import ScaleFacts
from .state import Groups, stable_argsort

I64 = npt.NDArray[np.int64]
BINS_PER_DECADE = 40  # 5.9 % wide: fine for telling a tenth from a discount
DECADES = 6  # 1 fen/kg … 10 000 yuan/kg
BINS = BINS_PER_DECADE * DECADES
DAY_MS = 86_400_000
_NO_DAY = np.iinfo(np.int64).min


def price_bin(price: I64) -> I64:
    """The histogram bin of each unit price (fen/kg, > 0)."""
    b = np.floor(np.log10(np.maximum(price, 1)) * BINS_PER_DECADE).astype(np.int64)
    result: I64 = np.clip(b, 0, BINS - 1)
    return result


def bin_price(b: I64) -> npt.NDArray[np.float64]:
    """The price (fen/kg) at the middle of each bin."""
    result: npt.NDArray[np.float64] = 10.0 ** ((b + 0.5) / BINS_PER_DECADE)
    return result


def _median_bin(hist: I64, min_count: int) -> I64:
    """The median bin of each histogram row, or -1 where the row has fewer than ``min_count`` counts."""
    total: I64 = hist.sum(axis=1)
    if hist.shape[0] == 0:
        return total
    cum = np.cumsum(hist, axis=1)
    median: I64 = np.argmax(cum >= ((total + 1) // 2)[:, None], axis=1).astype(np.int64)
    result: I64 = np.where(total >= max(min_count, 1), median, -1)
    return result


class PriceBook:
    """Per (market, commodity): the current market day, its histogram, and the reference bin in force."""

    def __init__(self) -> None:
        self.keys: dict[tuple[int, int], int] = {}  # (market code, plu code) → row
        self.day: I64 = np.zeros(0, dtype=np.int64)
        self.hist: npt.NDArray[np.int32] = np.zeros((0, BINS), dtype=np.int32)
        self.ref: I64 = np.zeros(0, dtype=np.int64)  # reference bin, -1 none

    def __len__(self) -> int:
        return len(self.keys)

    def _rows_of(self, market: I64, plu: I64) -> tuple[I64, npt.NDArray[np.intp], I64]:
        """Each sale's rank among the distinct keys of this batch (sorted), the sales in key order (stable),
        and each rank's row in the book (new keys get one)."""
        combo = (market << 32) | plu
        dense = market * (int(plu.max()) + 1) + plu  # the same order, in small numbers when it can
        order = stable_argsort(dense)
        sorted_combo = combo[order]
        new = np.r_[True, sorted_combo[1:] != sorted_combo[:-1]]
        uniq = sorted_combo[new]
        rows = np.empty(len(uniq), dtype=np.int64)
        for i, c in enumerate(uniq.tolist()):  # a loop per distinct (market, commodity), not per sale
            key = (c >> 32, c & 0xFFFFFFFF)
            row = self.keys.get(key)
            if row is None:
                row = self.keys[key] = len(self.keys)
            rows[i] = row
        if len(self.keys) > len(self.day):
            grow = max(len(self.keys), 2 * len(self.day), 16) - len(self.day)
            self.day = np.r_[self.day, np.full(grow, _NO_DAY, dtype=np.int64)]
            self.hist = np.r_[self.hist, np.zeros((grow, BINS), dtype=np.int32)]
            self.ref = np.r_[self.ref, np.full(grow, -1, dtype=np.int64)]
        rank = np.empty(len(combo), dtype=np.int64)
        rank[order] = np.cumsum(new) - 1
        return rank, order, rows

    def observe(self, market: I64, plu: I64, ts: I64, price: I64, *, min_sales: int, day_offset_ms: int) -> I64:
        """The reference bin in force for each sale (-1: none learned yet), learning from the sales.

        A sale is *late* when a sale of a later day of its (market, commodity) came before it (in this
        batch or an earlier one): it is judged against the reference of that later day and not counted.
        """
        if len(price) == 0:
            return np.zeros(0, dtype=np.int64)
        rank, order, book_row = self._rows_of(market, plu)
        day = (ts + day_offset_ms) // DAY_MS
        g = Groups.from_sorted(order, rank[order])  # by key, arrival order kept
        ordered_day = day[order]
        seed = self.day[book_row[g.keys]]
        running = np.maximum(-g.cummin(-ordered_day), seed[g.group_of])  # the latest day up to each sale
        before = np.r_[np.int64(0), running[:-1]]
        before[g.starts] = seed
        late = ordered_day < before  # in grouped order
        judged_day = np.maximum(before, ordered_day)
        out = self.ref[book_row[rank[order]]]  # in grouped order; late sales without a group: the book's
        live = np.flatnonzero(~late)
        if len(live) == 0:
            result = np.empty_like(out)
            result[order] = out
            return result
        # live sales in grouped order are sorted by (book row, day): days never go back within a row
        lk, ld = rank[order][live], ordered_day[live]
        new = np.r_[True, (lk[1:] != lk[:-1]) | (ld[1:] != ld[:-1])]
        group = np.cumsum(new) - 1
        gk, gd = lk[new], ld[new]
        ref, hist = self._references(book_row[gk], gd, group, price[order][live], min_sales)
        out[live] = ref[group]
        stale = np.flatnonzero(late)
        if len(stale):  # judged against the reference of the day they came after, when it is in this batch
            sk, sd = rank[order][stale], judged_day[stale]
            pos = np.clip(np.searchsorted(gk * (1 << 32) + gd, sk * (1 << 32) + sd), 0, len(gk) - 1)
            found = (gk[pos] == sk) & (gd[pos] == sd)
            out[stale[found]] = ref[pos[found]]
        last = np.r_[gk[1:] != gk[:-1], True]  # each row's newest day in this batch becomes the book's
        rows = book_row[gk[last]]
        self.day[rows], self.hist[rows], self.ref[rows] = gd[last], hist[last], ref[last]
        result = np.empty_like(out)
        result[order] = out
        return result

    def _references(
        self, gk: I64, gd: I64, inverse: npt.NDArray[np.intp], price: I64, min_sales: int
    ) -> tuple[I64, I64]:
        """Per (key, day) group of this batch (sorted by key, then day): the reference in force, and the
        day's histogram so far (the book's included when the group continues the book's day)."""
        hist = np.zeros((len(gk), BINS), dtype=np.int64)
        np.add.at(hist, (inverse, price_bin(price)), 1)
        continues = gd == self.day[gk]
        hist[continues] += self.hist[gk[continues]]
        first = np.r_[True, gk[1:] != gk[:-1]]
        # a key's first group: the book's reference, or the book's own day's median if that day has ended
        ended = _median_bin(self.hist[gk].astype(np.int64), min_sales)
        start = np.where(~continues & (ended >= 0), ended, self.ref[gk])
        # a later group: the median of the last earlier day of its key with enough sales, else the start
        own = _median_bin(hist, min_sales)
        n = np.arange(len(gk))
        prev_valid = np.r_[-1, np.maximum.accumulate(np.where(own >= 0, n, -1))[:-1]]
        key_start = np.maximum.accumulate(np.where(first, n, 0))
        ref = np.where(prev_valid >= key_start, own[np.maximum(prev_valid, 0)], start[key_start])
        return ref, hist

    # -- persistence ---------------------------------------------------------------------------------
    def to_bytes(self, facts: ScaleFacts) -> bytes:
        markets = {c: m for m, c in facts.market_codes.items()}
        plus = {c: p for p, c in facts.plu_codes.items()}
        names = [[markets[m], plus[p]] for (m, p) in self.keys]
        n = len(self.keys)
        buf = io.BytesIO()
        np.savez_compressed(
            buf, keys=np.array(json.dumps(names)), day=self.day[:n], hist=self.hist[:n], ref=self.ref[:n]
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, facts: ScaleFacts) -> PriceBook:
        book = cls()
        with np.load(io.BytesIO(data)) as saved:
            names: list[list[str]] = json.loads(str(saved["keys"]))
            if not names:
                return book
            market = np.array([facts.market_codes.setdefault(m, len(facts.market_codes)) for m, _ in names])
            plu = np.array([facts.plu_code(p) for _, p in names])
            rank, _, book_row = book._rows_of(market.astype(np.int64), plu.astype(np.int64))
            rows = book_row[rank]
            book.day[rows], book.hist[rows], book.ref[rows] = saved["day"], saved["hist"], saved["ref"]
        return book
