"""Judging a verification (检定) from the readings taken on site: each reference weight's error against the
maximum permissible error at verification (OIML R76 / JJG 539, the table in :mod:`device_profiles.metrology`)."""

from __future__ import annotations

import numpy as np

from device_profiles.metrology import CLASS_CODES, mpe_mg

from .schemas import ReadingIn, ReadingOut


def judge_readings(readings: list[ReadingIn], *, accuracy_class: str, e_mg: int) -> list[ReadingOut]:
    """Error and MPE (in grams) of each reading; a verification passes when every error is within MPE."""
    reference = np.array([round(r.reference_g * 1000) for r in readings], dtype=np.int64)
    indicated = np.array([round(r.indicated_g * 1000) for r in readings], dtype=np.int64)
    n = len(readings)
    mpe = mpe_mg(
        reference, np.full(n, e_mg, np.int64), np.full(n, CLASS_CODES[accuracy_class], np.int64), in_service=False
    )
    error = indicated - reference
    return [
        ReadingOut(
            reference_g=r.reference_g,
            indicated_g=r.indicated_g,
            error_g=float(err) / 1000,
            mpe_g=float(m) / 1000,
            within_mpe=bool(abs(err) <= m),
        )
        for r, err, m in zip(readings, error, mpe, strict=True)
    ]
