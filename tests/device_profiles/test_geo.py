"""WGS-84 ↔ GCJ-02 against published reference points (the eviltransform and coordtransform test suites)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_profiles.geo import gcj02_to_wgs84, out_of_china, wgs84_to_gcj02

#: (WGS-84 lat, lon) → (GCJ-02 lat, lon), as the reference implementations compute them
REFERENCE = [
    ((31.1774276, 121.5272106), (31.17530398364597, 121.531541859215)),  # Shanghai (eviltransform)
    ((22.543847, 113.912316), (22.540796131694766, 113.9171764808363)),  # Shenzhen (eviltransform)
    ((39.911954, 116.377817), (39.91334545536069, 116.38404722455657)),  # Beijing (eviltransform)
    ((39.915, 116.404), (39.91640428150164, 116.41024449916938)),  # Beijing (coordtransform)
]


@pytest.mark.parametrize(("wgs", "gcj"), REFERENCE)
def test_reference_points(wgs: tuple[float, float], gcj: tuple[float, float]) -> None:
    assert wgs84_to_gcj02(*wgs) == pytest.approx(gcj, abs=1e-9)
    assert gcj02_to_wgs84(*gcj) == pytest.approx(wgs, abs=1e-8)


def test_the_offset_is_hundreds_of_metres_in_shenzhen() -> None:
    (lat, lon), (g_lat, g_lon) = REFERENCE[1]
    metres = math.hypot((g_lat - lat) * 111_000, (g_lon - lon) * 111_000 * math.cos(math.radians(lat)))
    assert 400 < metres < 700


def test_outside_china_nothing_moves() -> None:
    for lat, lon in ((48.8584, 2.2945), (35.68, 139.69), (-33.86, 151.21), (22.3, 140.0)):  # Paris, Tokyo, …
        assert out_of_china(lat, lon)
        assert wgs84_to_gcj02(lat, lon) == (lat, lon) == gcj02_to_wgs84(lat, lon)


@given(st.floats(18.0, 53.0), st.floats(74.0, 134.0))
def test_the_inverse_returns_the_position(lat: float, lon: float) -> None:
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lat, lon))
    assert back == pytest.approx((lat, lon), abs=1e-8)
