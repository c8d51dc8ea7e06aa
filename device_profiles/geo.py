"""WGS-84 ↔ GCJ-02 (国测局坐标, "Mars coordinates"): pure functions, no I/O.

Zhijian keeps every position in WGS-84: what a GNSS receiver reports (the rapid-test vehicles' ``gps``
records), what the registry stores for districts, markets, stalls and planting bases, and what
OpenStreetMap, Grafana's default Geomap basemap and most web maps outside China use. Chinese basemaps
— AutoNavi/Gaode (高德), Tencent (腾讯) and the Chinese editions of others — are drawn in GCJ-02, which
offsets positions by up to several hundred metres; a WGS-84 point drawn on them lands beside its street.
Convert with :func:`wgs84_to_gcj02` only where such a basemap draws it (a Geomap layer on AutoNavi tiles),
never in stored data. Baidu's BD-09 is a further offset of GCJ-02 and is not handled here.

The algorithm is the published one (the transform in the "eviltransform" and "coordtransform" libraries:
Krasovsky 1940 ellipsoid, a = 6 378 245 m, e² = 0.006 693 421 622 965 943 23); outside China's bounding
box positions are left as they are. :func:`gcj02_to_wgs84` inverts it by fixed-point iteration (the
transform has no closed-form inverse), to about 1e-9 degrees (0.1 mm).
"""

from __future__ import annotations

import math

_A = 6_378_245.0
_EE = 0.00669342162296594323


def out_of_china(lat: float, lon: float) -> bool:
    """Outside the box GCJ-02 applies to (positions there are the same in both systems)."""
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _transform_lat(x: float, y: float) -> float:
    r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    r += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    r += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    r += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return r


def _transform_lon(x: float, y: float) -> float:
    r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    r += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    r += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    r += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return r


def _offset(lat: float, lon: float) -> tuple[float, float]:
    """GCJ-02 − WGS-84 at the WGS-84 position (lat, lon), in degrees."""
    d_lat = _transform_lat(lon - 105.0, lat - 35.0)
    d_lon = _transform_lon(lon - 105.0, lat - 35.0)
    rad = lat / 180.0 * math.pi
    magic = 1 - _EE * math.sin(rad) ** 2
    sqrt_magic = math.sqrt(magic)
    d_lat = d_lat * 180.0 / ((_A * (1 - _EE)) / (magic * sqrt_magic) * math.pi)
    d_lon = d_lon * 180.0 / (_A / sqrt_magic * math.cos(rad) * math.pi)
    return d_lat, d_lon


def wgs84_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """(lat, lon) in WGS-84 → (lat, lon) in GCJ-02, for drawing on a Chinese basemap."""
    if out_of_china(lat, lon):
        return lat, lon
    d_lat, d_lon = _offset(lat, lon)
    return lat + d_lat, lon + d_lon


def gcj02_to_wgs84(lat: float, lon: float, *, tolerance_deg: float = 1e-10) -> tuple[float, float]:
    """(lat, lon) in GCJ-02 (read off a Chinese map) → WGS-84, by iteration to ``tolerance_deg``."""
    if out_of_china(lat, lon):
        return lat, lon
    w_lat, w_lon = lat, lon
    for _ in range(30):  # converges in 3–5 steps: the offset changes slowly with position
        g_lat, g_lon = wgs84_to_gcj02(w_lat, w_lon)
        e_lat, e_lon = g_lat - lat, g_lon - lon
        w_lat, w_lon = w_lat - e_lat, w_lon - e_lon
        if abs(e_lat) < tolerance_deg and abs(e_lon) < tolerance_deg:
            break
    return w_lat, w_lon
