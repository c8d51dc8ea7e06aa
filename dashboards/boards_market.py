"""The market dashboards: city overview, district and market drill-down, scale and stall detail.

Money is stored in fen and weights in mg (the contract); panels divide in the query so that Grafana's
units (``currencyCNY`` yuan, ``masskg``, ``massg``, ``percent``) show people what they know.
"""

from __future__ import annotations

from .case_queries import CASE_QUERIES
from .model import (
    Board,
    Panel,
    Query,
    Var,
    barchart,
    dashboard_link,
    data_link,
    first_rows,
    hide_fields,
    join_on,
    sort_by,
    stat,
    table,
    timeseries,
    unit_override,
)

CITY, MARKET, SCALE = "zj-city", "zj-market", "zj-scale"
YUAN, KG, PCT = "currencyCNY", "masskg", "percent"

DISTRICT = Var("district", "区 District", 'SHOW TAG VALUES FROM "sale" WITH KEY = "district"')
MARKET_VAR = Var(
    "market", "市场 Market", 'SHOW TAG VALUES FROM "sale" WITH KEY = "market" WHERE "district" =~ /^${district}$/'
)
STALL = Var("stall", "摊位 Stall", 'SHOW TAG VALUES FROM "sale" WITH KEY = "stall" WHERE "market" =~ /^${market}$/')
DEVICE = Var(
    "device",
    "秤 Scale",
    'SHOW TAG VALUES FROM "sale" WITH KEY = "device" WHERE "market" =~ /^${market}$/ AND "stall" =~ /^${stall}$/',
    multi=False,
    include_all=False,
)
PLACE = '"district" =~ /^${district}$/ AND "market" =~ /^${market}$/ AND "stall" =~ /^${stall}$/'
TO_SCALE = data_link(
    "秤详情 Scale detail",
    SCALE,
    "var-market=${__data.fields.market}&var-stall=${__data.fields.stall}&var-device=${__data.fields.device}",
)
TO_MARKET = data_link("市场下钻 Drill down", MARKET, "var-district=${__data.fields.district}")


def _links() -> list[dict[str, object]]:
    return [
        dashboard_link("城市总览 City overview", CITY),
        dashboard_link("区县与市场 Districts and markets", MARKET),
        dashboard_link("秤与摊位 Scale and stall", SCALE),
        dashboard_link("食安地图 Food-safety map", "zj-map"),
        dashboard_link("种植基地 Planting bases", "zj-bases"),
        dashboard_link("快检 Rapid tests", "zj-rapid"),
    ]


def city() -> Board:
    b = Board(
        CITY,
        "城市总览 City overview",
        "The whole city at a glance: scales selling and online, sales, turnover, flags by severity, the most"
        " suspicious scales, verifications due, open alerts, by district.",
        links=_links(),
    )
    b.add(
        stat(
            "有交易的秤 Scales selling",
            Query(
                'SELECT count("sales") AS scales FROM (SELECT count("amount_fen") AS sales FROM "sale"'
                ' WHERE $timeFilter GROUP BY "device")',
                ("scales",),
            ),
            description="Scales with at least one sale in the time range.",
        ),
        stat(
            "在线秤 Scales online",
            Query(
                'SELECT sum("online") AS online FROM (SELECT last("online") AS online FROM "scale_status"'
                ' WHERE $timeFilter GROUP BY "device")',
                ("online",),
            ),
        ),
        stat("交易笔数 Sales", Query('SELECT count("amount_fen") AS sales FROM "sale" WHERE $timeFilter', ("sales",))),
        stat(
            "成交额 Turnover",
            Query('SELECT sum("amount_fen") / 100 AS yuan FROM "sale" WHERE $timeFilter', ("yuan",)),
            unit=YUAN,
        ),
        stat(
            "销售重量 Weight sold",
            Query('SELECT sum("net_mg") / 1000000 AS kg FROM "sale" WHERE $timeFilter', ("kg",)),
            unit=KG,
        ),
        stat(
            "检定逾期 Verifications overdue",
            Query(
                'SELECT count("due") AS overdue FROM (SELECT last("verification_due_ms") AS due FROM "scale_status"'
                ' WHERE $timeFilter GROUP BY "device") WHERE "due" < ${__to}',
                ("overdue",),
                demo=False,
            ),
            description="Scales whose next verification was due before the end of the time range.",
        ),
        timeseries(
            "成交额 Turnover",
            Query(
                'SELECT sum("amount_fen") / 100 AS yuan FROM "sale" WHERE $timeFilter GROUP BY time($__interval)'
                " fill(0)",
                ("yuan",),
            ),
            unit=YUAN,
        ),
        timeseries(
            "按严重程度的标记 Flags by severity",
            Query(
                'SELECT count("seq") AS flags FROM "flag" WHERE $timeFilter GROUP BY time($__interval), "severity"'
                " fill(0)",
                ("flags", "severity"),
            ),
        ),
        table(
            "最可疑的秤 Most suspicious scales",
            Query(
                'SELECT count("seq") AS flags FROM "flag" WHERE $timeFilter'
                ' GROUP BY "device", "district", "market", "stall"',
                ("flags", "device", "district", "market", "stall"),
                fmt="table",
            ),
            Query(
                'SELECT last("online") AS online FROM "scale_status" WHERE $timeFilter GROUP BY "device", "vendor"',
                ("online", "device", "vendor"),
                fmt="table",
            ),
            transformations=[
                join_on("device"),
                hide_fields("Time", "Time 1", "Time 2"),
                sort_by("flags"),
                first_rows(20),
            ],
            links=[TO_SCALE],
            description="The 20 scales ranked by flags in the time range, with their stall and vendor (vendor from the"
            " per-scale status series).",
        ),
        table(
            "检定到期 Verifications due",
            Query(
                'SELECT last("verification_due_ms") AS due, last("last_verification_ms") AS verified FROM'
                ' "scale_status" WHERE $timeFilter GROUP BY "device", "district", "market", "stall", "vendor"',
                ("due", "verified", "device", "market", "stall", "vendor"),
                fmt="table",
            ),
            transformations=[hide_fields("Time"), sort_by("due", desc=False)],
            overrides=[unit_override("due", "dateTimeAsIso"), unit_override("verified", "dateTimeAsIso")],
        ),
        table(
            "告警 Alerts by kind",
            Query(
                'SELECT count("seq") AS alerts FROM "alert" WHERE $timeFilter GROUP BY "kind", "severity"',
                ("alerts", "kind", "severity"),
                fmt="table",
            ),
            Query(
                'SELECT sum("open") AS open FROM (SELECT last("open") AS open FROM "alert_state" WHERE $timeFilter'
                ' GROUP BY "id", "kind") GROUP BY "kind"',
                ("open", "kind"),
                fmt="table",
            ),
            transformations=[join_on("kind"), hide_fields("Time", "Time 1", "Time 2")],
            description="Alerts raised in the time range, and how many are still open (not acknowledged).",
        ),
        table(
            "按区 By district",
            Query(
                'SELECT count("amount_fen") AS sales, sum("amount_fen") / 100 AS yuan FROM "sale" WHERE $timeFilter'
                ' GROUP BY "district"',
                ("sales", "yuan", "district"),
                fmt="table",
            ),
            Query(
                'SELECT count("seq") AS flags FROM "flag" WHERE $timeFilter GROUP BY "district"',
                ("flags", "district"),
                fmt="table",
            ),
            transformations=[join_on("district"), hide_fields("Time", "Time 1", "Time 2")],
            overrides=[unit_override("yuan", YUAN)],
            links=[TO_MARKET],
        ),
        table(
            "案件 Cases open, acknowledged, assigned",
            Query(CASE_QUERIES["cases_by_district_now"], ("cases", "district", "state"), fmt="table", demo=False),
            transformations=[hide_fields("Time")],
            description="Cases not closed in the registry (docs/cases.md), by district and state: what supervisors"
            " still have to close in the loop (闭环). Empty unless the ingest reports to the registry.",
            w=12,
        ),
    )
    return b


def drilldown() -> Board:
    b = Board(
        MARKET,
        "区县与市场 Districts and markets",
        "Pick a district, a market and stalls: their sales, turnover and flags, stall by stall.",
        variables=[DISTRICT, MARKET_VAR, STALL],
        links=_links(),
    )
    b.add(
        stat(
            "交易笔数 Sales",
            Query(f'SELECT count("amount_fen") AS sales FROM "sale" WHERE {PLACE} AND $timeFilter', ("sales",)),
            w=6,
        ),
        stat(
            "成交额 Turnover",
            Query(f'SELECT sum("amount_fen") / 100 AS yuan FROM "sale" WHERE {PLACE} AND $timeFilter', ("yuan",)),
            unit=YUAN,
            w=6,
        ),
        stat(
            "标记 Flags",
            Query(f'SELECT count("seq") AS flags FROM "flag" WHERE {PLACE} AND $timeFilter', ("flags",)),
            w=6,
        ),
        stat(
            "被标记的秤 Scales flagged",
            Query(
                'SELECT count("flags") AS scales FROM (SELECT count("seq") AS flags FROM "flag" WHERE '
                + PLACE
                + ' AND $timeFilter GROUP BY "device")',
                ("scales",),
            ),
            w=6,
        ),
        timeseries(
            "各摊位成交额 Turnover by stall",
            Query(
                f'SELECT sum("amount_fen") / 100 AS yuan FROM "sale" WHERE {PLACE} AND $timeFilter'
                ' GROUP BY time($__interval), "stall" fill(0)',
                ("yuan", "stall"),
            ),
            unit=YUAN,
        ),
        _flags_by_rule(),
        table(
            "各摊位 Stalls",
            Query(
                'SELECT count("amount_fen") AS sales, sum("amount_fen") / 100 AS yuan, sum("net_mg") / 1000000 AS kg'
                f' FROM "sale" WHERE {PLACE} AND $timeFilter GROUP BY "market", "stall", "device"',
                ("sales", "yuan", "kg", "market", "stall", "device"),
                fmt="table",
            ),
            Query(
                f'SELECT count("seq") AS flags FROM "flag" WHERE {PLACE} AND $timeFilter GROUP BY "device"',
                ("flags", "device"),
                fmt="table",
            ),
            transformations=[join_on("device"), hide_fields("Time", "Time 1", "Time 2"), sort_by("flags")],
            overrides=[unit_override("yuan", YUAN), unit_override("kg", KG)],
            links=[TO_SCALE],
            w=24,
        ),
        table(
            "最新标记 Latest flags",
            Query(
                'SELECT "stall", "rule", "severity", "reason_zh", "reason_en", "value", "limit" FROM "flag" WHERE '
                + PLACE
                + " AND $timeFilter ORDER BY time DESC LIMIT 100",
                ("stall", "rule", "severity", "reason_zh", "reason_en"),
                fmt="table",
            ),
            w=24,
        ),
        table(
            "市场案件 Cases by market",
            Query(CASE_QUERIES["cases_by_market_now"], ("cases", "market", "state"), fmt="table", demo=False),
            transformations=[hide_fields("Time")],
            description="The district's cases not closed, market by market (a base's or a vehicle's case is in"
            " its district only).",
            w=24,
        ),
    )
    return b


def _flags_by_rule() -> Panel:
    p = barchart(
        "按规则的标记 Flags by rule",
        Query(
            f'SELECT count("seq") AS flags FROM "flag" WHERE {PLACE} AND $timeFilter GROUP BY "rule"',
            ("flags", "rule"),
            fmt="table",
        ),
    )
    p.options["xField"] = "rule"
    p.transformations = [hide_fields("Time")]
    return p


def scale_detail() -> Board:
    one = "\"device\" = '${device}'"
    b = Board(
        SCALE,
        "秤与摊位 Scale and stall",
        "One scale at its stall: sales, flags with their evidence, re-weighs at the fair scale against the"
        " maximum permissible error, seal and zero counters, verification.",
        variables=[
            Var("market", "市场 Market", 'SHOW TAG VALUES FROM "sale" WITH KEY = "market"'),
            STALL,
            DEVICE,
        ],
        links=_links(),
        time_from="now-24h",
    )
    b.add(
        stat(
            "交易笔数 Sales",
            Query(f'SELECT count("amount_fen") AS sales FROM "sale" WHERE {one} AND $timeFilter', ("sales",)),
            w=6,
        ),
        stat(
            "成交额 Turnover",
            Query(f'SELECT sum("amount_fen") / 100 AS yuan FROM "sale" WHERE {one} AND $timeFilter', ("yuan",)),
            unit=YUAN,
            w=6,
        ),
        stat(
            "标记 Flags",
            Query(f'SELECT count("seq") AS flags FROM "flag" WHERE {one} AND $timeFilter', ("flags",)),
            w=6,
        ),
        stat(
            "上次检定 Last verification",
            Query(
                f'SELECT last("last_verification_ms") AS verified FROM "scale_status" WHERE {one} AND $timeFilter',
                ("verified",),
            ),
            unit="dateTimeAsIso",
            w=6,
        ),
        timeseries(
            "销售 Sales",
            Query(
                f'SELECT count("amount_fen") AS sales, sum("amount_fen") / 100 AS yuan FROM "sale" WHERE {one}'
                " AND $timeFilter GROUP BY time($__interval) fill(0)",
                ("sales", "yuan"),
            ),
            overrides=[unit_override("yuan", YUAN)],
        ),
        timeseries(
            "复称差值 Re-weighs: short weight",
            Query(
                'SELECT ("claimed_mg" - "net_mg") / 1000 AS short_g, 100 * ("claimed_mg" - "net_mg") / "claimed_mg"'
                ' AS short_pct FROM "reweigh" WHERE "stall_device" = \'${device}\' AND $timeFilter',
                ("short_g", "short_pct"),
                demo=False,
            ),
            Query(
                f'SELECT "evidence_g" AS deviation, "limit_g" AS mpe FROM "flag" WHERE {one} AND "rule" =~ /reweigh/'
                " AND $timeFilter",
                ("deviation", "mpe"),
                demo=False,
            ),
            unit="massg",
            description="The receipt's net weight less the fair scale's, per re-weigh (g and %), and the re-weigh"
            " flags' evidence against their tolerance, in grams (the in-service maximum permissible error and the"
            " scales' rounding).",
            overrides=[unit_override("short_pct", PCT)],
        ),
        table(
            "标记与证据 Flags and evidence",
            Query(
                'SELECT "rule", "severity", "reason_zh", "reason_en", "evidence_g", "evidence_pct", "value", "limit"'
                f' FROM "flag" WHERE {one} AND $timeFilter ORDER BY time DESC LIMIT 200',
                ("rule", "severity", "reason_zh", "reason_en", "evidence_g", "evidence_pct"),
                fmt="table",
                demo=False,
            ),
            overrides=[unit_override("evidence_g", "massg"), unit_override("evidence_pct", PCT)],
            w=24,
        ),
        timeseries(
            "封印与置零计数 Seal and zero counters",
            Query(
                'SELECT last("calibration_events") AS calibration, last("configuration_events") AS configuration,'
                f' last("zero_set_events") AS zero_sets FROM "sale" WHERE {one} AND $timeFilter'
                " GROUP BY time($__interval) fill(previous)",
                ("calibration", "configuration", "zero_sets"),
            ),
            description="The sealed calibration and configuration counters must not move between verifications.",
        ),
        timeseries(
            "零点 Zero (load-cell counts)",
            Query(
                f'SELECT mean("zero_counts") AS zero_counts FROM "sale" WHERE {one} AND $timeFilter'
                " GROUP BY time($__interval)",
                ("zero_counts",),
            ),
        ),
    )
    return b
