"""The dashboards' JSON type-checks against Grafana 11.6's own schema (@grafana/schema, npm) with TypeScript:
each dashboard ``satisfies Dashboard`` and each panel's options ``satisfies`` its panel type's ``Options``
(TypeScript rejects unknown properties and wrong types in an object literal). JSON holds an enum's value,
not the enum, so enum types are compared by their values (``Loose``). Needs node and npm (Debian
``nodejs``, ``npm``) and the npm registry for the two pinned packages."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from dashboards import render

pytestmark = pytest.mark.integration

PACKAGES = {"@grafana/schema": "11.6.16", "typescript": "5.9.3"}
_RAW = "./node_modules/@grafana/schema/dist/esm/raw/composable"
_OPTIONS = {
    "geomap": ("GeomapOptions", "geomap/panelcfg/x/GeomapPanelCfg_types.gen"),
    "table": ("TableOptions", "table/panelcfg/x/TablePanelCfg_types.gen"),
    "stat": ("StatOptions", "stat/panelcfg/x/StatPanelCfg_types.gen"),
    "timeseries": ("TimeSeriesOptions", "timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen"),
    "barchart": ("BarChartOptions", "barchart/panelcfg/x/BarChartPanelCfg_types.gen"),
}
_HELPERS = """
type Loose<T> = T extends string ? `${T}` : T extends number | boolean | null | undefined ? T
  : T extends Array<infer U> ? Array<Loose<U>> : T extends object ? { [K in keyof T]: Loose<T[K]> } : T;
type DeepPartial<T> = T extends Array<infer U> ? Array<DeepPartial<U>>
  : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;
"""


def _check_source(dashboards: list[dict[str, object]]) -> str:
    lines = ['import type { Dashboard } from "@grafana/schema";']
    lines += [f'import type {{ Options as {name} }} from "{_RAW}/{path}";' for name, path in _OPTIONS.values()]
    lines.append(_HELPERS)
    for n, d in enumerate(dashboards):
        lines.append(f"export const d{n} = {json.dumps(d, ensure_ascii=False)} satisfies Loose<Dashboard>;")
        for i, p in enumerate(d["panels"]):  # type: ignore[arg-type]
            kind = _OPTIONS[p["type"]][0]
            lines.append(
                f"export const o{n}_{i} = {json.dumps(p['options'], ensure_ascii=False)}"
                f" satisfies DeepPartial<Loose<{kind}>>;"
            )
    return "\n".join(lines) + "\n"


def _npm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["npm", *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False)


def test_dashboards_satisfy_grafanas_schema(tmp_path: Path) -> None:
    assert shutil.which("npm") and shutil.which("node"), "install node and npm (Debian packages nodejs, npm)"
    (tmp_path / "package.json").write_text(json.dumps({"private": True, "dependencies": PACKAGES}))
    installed = _npm("install", "--no-audit", "--no-fund", "--ignore-scripts", cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    dashboards = [json.loads(t) for rel, t in sorted(render().items()) if rel.endswith(".json")]
    (tmp_path / "check.ts").write_text(_check_source(dashboards), encoding="utf-8")
    config = {
        "compilerOptions": {
            "strict": True,
            "noEmit": True,
            "module": "esnext",
            "moduleResolution": "bundler",
            "target": "es2022",
            "skipLibCheck": True,
        },
        "files": ["check.ts"],
    }
    (tmp_path / "tsconfig.json").write_text(json.dumps(config))
    checked = _npm("exec", "--", "tsc", "-p", ".", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout[-5000:] + checked.stderr[-2000:]
    # the check can fail: a map zoom given as a string is refused
    for d in dashboards:
        for p in d["panels"]:
            if p["type"] == "geomap":
                p["options"]["view"]["zoom"] = "12"
    (tmp_path / "check.ts").write_text(_check_source(dashboards), encoding="utf-8")
    refused = _npm("exec", "--", "tsc", "-p", ".", cwd=tmp_path)
    assert refused.returncode != 0 and "not assignable to type 'number'" in refused.stdout, refused.stdout
