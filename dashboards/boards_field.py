"""The field dashboards: the food-safety map (食安地图), planting bases, rapid tests.

Positions are WGS-84 degrees as the devices and the registry give them. Grafana's default basemap (CARTO on
OpenStreetMap) is WGS-84 too, so no conversion is made; a Chinese basemap such as AMap (Gaode) draws GCJ-02
and would need the points converted (or a WGS-84 layer such as Tianditu).
"""

from __future__ import annotations

from typing import Any

from device_profiles.sensor_limits import DEFAULT_LIMITS

from .boards_market import PCT, _links
from .model import Board, Panel, Query, Var, stat, table, timeseries

MAP, BASES, RAPID = "zj-map", "zj-bases", "zj-rapid"
CENTRE = (22.545, 114.06)  # Futian, Shenzhen: where the demo's market, base and vehicle are

BASE = Var("base", "基地 Base", 'SHOW TAG VALUES FROM "soil" WITH KEY = "base"')
R_DISTRICT = Var("district", "区 District", 'SHOW TAG VALUES FROM "rapid_test" WITH KEY = "district"')
VEHICLE = Var(
    "vehicle",
    "快检车 Vehicle",
    'SHOW TAG VALUES FROM "rapid_test" WITH KEY = "vehicle" WHERE "district" =~ /^${district}$/',
)
RAPID_WHERE = '"district" =~ /^${district}$/ AND "vehicle" =~ /^${vehicle}$/'


def _layer(kind: str, name: str, ref: str, style: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "name": name,
        "config": {"showLegend": True, "style": style, **extra},
        "location": {"mode": "coords", "latitude": "lat", "longitude": "lon"},
        "filterData": {"id": "byRefId", "options": ref},
        "tooltip": True,
    }


def _colour_by(field: str, size: int) -> dict[str, Any]:
    return {
        "size": {"fixed": size},
        "color": {"field": field, "fixed": "green"},
        "opacity": 0.85,
        "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
        "text": {"mode": "field", "field": "name", "fixed": ""},
        "textConfig": {"fontSize": 11, "offsetY": -14, "textAlign": "center", "textBaseline": "middle"},
    }


def _fixed(colour: str, size: int, symbol: str = "circle") -> dict[str, Any]:
    return {
        "size": {"fixed": size},
        "color": {"fixed": colour},
        "opacity": 0.9,
        "symbol": {"mode": "fixed", "fixed": f"img/icons/marker/{symbol}.svg"},
    }


def food_safety_map() -> Board:
    """Markets and bases coloured by open flags and alerts; vehicles with tracks; flagged test points."""
    queries = [
        Query(
            'SELECT last("lat") AS lat, last("lon") AS lon, last("open_flags") AS open_flags FROM "place"'
            ' WHERE "kind" = \'market\' AND $timeFilter GROUP BY "id", "name", "district"',
            ("lat", "lon", "open_flags", "id", "name"),
            fmt="table",
        ),
        Query(
            'SELECT last("lat") AS lat, last("lon") AS lon, last("open_alerts") AS open_alerts FROM "place"'
            ' WHERE "kind" = \'base\' AND $timeFilter GROUP BY "id", "name", "district"',
            ("lat", "lon", "open_alerts", "id", "name"),
            fmt="table",
        ),
        Query(
            'SELECT "lat_deg" AS lat, "lon_deg" AS lon, "speed_kmh" AS speed FROM "gps" WHERE $timeFilter'
            ' GROUP BY "vehicle"',
            ("lat", "lon", "vehicle"),
            fmt="table",
        ),
        Query(
            'SELECT "lat_deg" AS lat, "lon_deg" AS lon, "sample_name", "inhibition_pct", "subject" FROM "alert"'
            " WHERE \"kind\" = 'rapid_test_suspect' AND $timeFilter",
            ("lat", "lon", "sample_name", "inhibition_pct"),
            fmt="table",
        ),
        Query(
            'SELECT "lat_deg" AS lat, "lon_deg" AS lon, "sample_name", "inhibition_pct", "subject" FROM "alert"'
            " WHERE \"kind\" = 'rapid_test_positive' AND $timeFilter",
            ("lat", "lon", "sample_name", "inhibition_pct"),
            fmt="table",
        ),
    ]
    layers = [
        _layer("markers", "市场 Markets (open flags)", "A", _colour_by("open_flags", 14)),
        _layer("markers", "种植基地 Planting bases (open alerts)", "B", _colour_by("open_alerts", 14)),
        _layer("route", "快检车轨迹 Vehicle tracks", "C", {"color": {"fixed": "blue"}, "lineWidth": 2}, arrow=1),
        _layer("markers", "可疑 Suspect samples", "D", _fixed("orange", 9)),
        _layer("markers", "阳性 Positive samples", "E", _fixed("red", 14, "star")),
    ]
    geomap = Panel(
        "geomap",
        "食安地图 Food-safety map",
        queries,
        w=24,
        h=18,
        description="Markets and planting bases coloured by their open flags and alerts (green none, orange some,"
        " red many); rapid-test vehicles' tracks; where suspect (orange) and positive (red star) samples were"
        " tested. WGS-84 on the default basemap.",
        options={
            "view": {"id": "coords", "lat": CENTRE[0], "lon": CENTRE[1], "zoom": 12, "allLayers": True},
            "controls": {"showZoom": True, "mouseWheelZoom": True, "showAttribution": True, "showScale": True},
            "basemap": {"type": "default", "name": "底图 Basemap", "config": {}},
            "layers": layers,
            "tooltip": {"mode": "details"},
        },
        defaults={
            "color": {"mode": "thresholds"},
            "thresholds": {
                "mode": "absolute",
                "steps": [
                    {"color": "green", "value": None},
                    {"color": "orange", "value": 1},
                    {"color": "red", "value": 5},
                ],
            },
        },
        max_data_points=5_000,
    )
    b = Board(
        MAP,
        "食安地图 Food-safety map",
        "Where the problems are: markets, planting bases, rapid-test vehicles and their positive samples.",
        links=_links(),
    )
    b.add(
        geomap,
        table(
            "快检车位置 Vehicles: last position",
            Query(
                'SELECT last("lat_deg") AS lat, last("lon_deg") AS lon FROM "gps" WHERE $timeFilter GROUP BY "vehicle"',
                ("lat", "lon", "vehicle"),
                fmt="table",
            ),
        ),
        table(
            "阳性样品 Positive samples",
            Query(
                'SELECT "sample_id", "sample_name", "inhibition_pct", "subject", "market", "stall", "device"'
                ' FROM "alert" WHERE "kind" = \'rapid_test_positive\' AND $timeFilter ORDER BY time DESC LIMIT 50',
                ("sample_id", "sample_name", "inhibition_pct", "subject"),
                fmt="table",
            ),
        ),
    )
    return b


def _limit_thresholds(channel: str) -> dict[str, Any]:
    """The channel's default limits drawn as red areas outside the green band (a base's own limits, from
    the registry or its crop, may differ: the alerts table says which limit raised each alert)."""
    limit = DEFAULT_LIMITS[channel]
    steps: list[dict[str, Any]] = [{"color": "red" if limit.low is not None else "green", "value": None}]
    if limit.low is not None:
        steps.append({"color": "green", "value": limit.low})
    if limit.high is not None:
        steps.append({"color": "red", "value": limit.high})
    return {
        "thresholds": {"mode": "absolute", "steps": steps},
        "custom": {"thresholdsStyle": {"mode": "line+area"}},
    }


_CHANNELS = (
    ("soil", "moisture_pct", "土壤湿度 Soil moisture", "percent"),
    ("soil", "temperature_c", "土壤温度 Soil temperature", "celsius"),
    ("soil", "ph", "土壤 pH Soil pH", "none"),
    ("soil", "conductivity_us_cm", "土壤电导率 Soil EC", "suffix: µS/cm"),
    ("air", "temperature_c", "气温 Air temperature", "celsius"),
    ("air", "humidity_pct", "空气湿度 Air humidity", "humidity"),
    ("air", "co2_ppm", "二氧化碳 CO₂", "ppm"),
)


def planting_bases() -> Board:
    b = Board(
        BASES,
        "种植基地 Planting bases",
        "Each base's soil and air series against their limits, its alerts open and acknowledged, sensor faults.",
        variables=[BASE],
        links=_links(),
        time_from="now-24h",
    )
    where = '"base" =~ /^${base}$/ AND $timeFilter'
    for measurement, fld, title, unit in _CHANNELS:
        b.add(
            timeseries(
                title,
                Query(
                    f'SELECT mean("{fld}") AS "{fld}" FROM "{measurement}" WHERE {where}'
                    ' GROUP BY time($__interval), "base"',
                    (fld, "base"),
                ),
                unit=unit,
                w=8,
                h=7,
                defaults=_limit_thresholds(f"{measurement}.{fld}"),
            )
        )
    b.add(
        stat(
            "未确认告警 Alerts not acknowledged",
            Query(
                'SELECT sum("open") AS open FROM (SELECT last("open") AS open FROM "alert_state" WHERE'
                f' "kind" =~ /^sensor_/ AND {where} GROUP BY "id")',
                ("open",),
                demo=False,
            ),
            w=8,
            h=7,
        ),
        table(
            "基地告警 Base alerts",
            Query(
                'SELECT "base", "channel", "value", "limit", "side", "id" FROM "alert" WHERE "kind" =~ /^sensor_/'
                f" AND {where} ORDER BY time DESC LIMIT 200",
                ("base", "channel", "value", "limit", "id"),
                fmt="table",
                demo=False,
            ),
            w=12,
        ),
        table(
            "告警处理 Alert state (open, acknowledged, closed)",
            Query(
                'SELECT last("state") AS state, last("open") AS open, last("actor") AS actor FROM "alert_state"'
                f' WHERE "kind" =~ /^sensor_/ AND {where} GROUP BY "id", "base"',
                ("state", "open", "actor", "id", "base"),
                fmt="table",
                demo=False,
            ),
            w=12,
        ),
        table(
            "传感器故障 Sensor faults",
            Query(
                f'SELECT count("seq") AS faults FROM "sensor_fault" WHERE {where} GROUP BY "base", "channel", "fault"',
                ("faults", "channel", "fault"),
                fmt="table",
                demo=False,
            ),
            w=24,
            h=6,
        ),
    )
    return b


def rapid_tests() -> Board:
    where = f"{RAPID_WHERE} AND $timeFilter"
    b = Board(
        RAPID,
        "快检 Rapid tests",
        "Pesticide rapid tests (enzyme inhibition): results by category and market, positives with the sample's"
        " chain (stall or base, vehicle, position).",
        variables=[R_DISTRICT, VEHICLE],
        links=_links(),
        time_from="now-24h",
    )
    b.add(
        stat(
            "检测数 Tests",
            Query(f'SELECT count("inhibition_pct") AS tests FROM "rapid_test" WHERE {where}', ("tests",)),
            w=8,
        ),
        stat(
            "阳性 Positives",
            Query(
                f'SELECT count("inhibition_pct") AS positives FROM "rapid_test" WHERE "result" = \'positive\''
                f" AND {where}",
                ("positives",),
            ),
            w=8,
        ),
        stat(
            "平均抑制率 Mean inhibition",
            Query(f'SELECT mean("inhibition_pct") AS pct FROM "rapid_test" WHERE {where}', ("pct",)),
            unit=PCT,
            w=8,
        ),
        timeseries(
            "检测结果 Results over time",
            Query(
                f'SELECT count("inhibition_pct") AS tests FROM "rapid_test" WHERE {where}'
                ' GROUP BY time($__interval), "result" fill(0)',
                ("tests", "result"),
            ),
        ),
        table(
            "按品类 Results by category",
            Query(
                f'SELECT count("inhibition_pct") AS tests FROM "rapid_test" WHERE {where}'
                ' GROUP BY "sample_category", "result"',
                ("tests", "sample_category", "result"),
                fmt="table",
            ),
        ),
        table(
            "按市场 Suspect and positive samples by market",
            Query(
                'SELECT count("inhibition_pct") AS samples FROM "alert" WHERE "kind" =~ /^rapid_test_/ AND'
                f' {where} GROUP BY "district", "market", "kind"',
                ("samples", "market", "kind"),
                fmt="table",
            ),
            w=24,
        ),
        table(
            "阳性样品溯源 Positives and their chain",
            Query(
                'SELECT "sample_id", "sample_name", "inhibition_pct", "result", "agrees", "subject", "market",'
                ' "stall", "base", "vehicle", "lat_deg", "lon_deg", "action" FROM "alert" WHERE'
                f' "kind" =~ /^rapid_test_/ AND {where} ORDER BY time DESC LIMIT 200',
                ("sample_id", "sample_name", "inhibition_pct", "result", "subject", "vehicle"),
                fmt="table",
            ),
            w=24,
            description="subject is the device the sample came from (the stall's scale or the base's gateway);"
            " market and stall are where that device stands; the position is the vehicle's at sampling.",
        ),
    )
    return b
