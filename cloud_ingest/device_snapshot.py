"""The ingest's snapshot of its device table: the columns of a :class:`DeviceTable` in one uncompressed
``.npz`` file beside the ingest's state, named by the revision of the source it was built from (a devices
file's size and content digest, or the registry's identity and revision).

At start the ingest loads the snapshot when its revision is the source's (a million devices in well
under a second), else it reads the source and writes a new snapshot. A snapshot of another revision is
never used: keys and revocations must be the source's. A snapshot that cannot be read (truncated,
corrupt: every member carries a CRC, checked as it is read) is ignored with a warning and rebuilt; the
ingest never fails on one. It is written atomically (a temporary file, fsync, rename), readable by its
owner only: it holds every device's integrity key, as the devices file does.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from anti_cheat.device_index import DeviceIndex, check_ids
from anti_cheat.fact_columns import INTS, FactColumns

from .device_table import DeviceTable

log = logging.getLogger(__name__)

FORMAT = 2  # raise when the layout changes: older snapshots are then rebuilt (2: places, unverified)


def save_snapshot(path: Path, table: DeviceTable, revision: str) -> None:
    """Write ``table`` (with its fact columns) as the snapshot of ``revision``, atomically."""
    cols = table.fact_columns
    if cols is None:
        raise ValueError("the table's fact columns were released: nothing to snapshot")
    meta = {
        "format": FORMAT,
        "revision": revision,
        "tables": table.tables,
        "crops": table.crops(),
        "limits": table.limits,
        "commodity_median": table.commodity_median,
        "software_ids": cols.software_ids,
        "markets": cols.markets,
        "places": table.places,
    }
    arrays: dict[str, Any] = {f"c_{name}": col for name, col in table.columns.items()}
    arrays |= {f"f_{name}": col for name, col in cols.ints.items()}
    arrays |= {
        "ids": table.index.ids,
        "f_has": cols.has,
        "f_coefficient": cols.coefficient,
        "f_class": cols.class_code,
        "f_software": cols.software,
        "f_market": cols.market,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def snapshot_revision(path: Path) -> str | None:
    """The revision a snapshot was built from (None: none there or unreadable)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
        return str(meta["revision"]) if meta.get("format") == FORMAT else None
    except FileNotFoundError:
        return None
    except Exception as exc:  # whatever a damaged file raises: it is only a cache
        log.warning("%s: device snapshot unreadable (%s); it will be rebuilt", path, exc)
        return None


def load_snapshot(path: Path, revision: str, *, with_facts: bool = True) -> DeviceTable | None:
    """The table of the snapshot at ``path`` if it is of ``revision``; None (and a warning when the file
    is damaged) if not: the caller then reads the source and saves a new snapshot."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != FORMAT or meta.get("revision") != revision:
                log.debug("%s: device snapshot of another revision, not used", path)
                return None
            names = set(z.files)
            columns = {n[2:]: z[n] for n in names if n.startswith("c_")}
            facts = FactColumns(
                z["f_has"],
                z["f_coefficient"],
                {n: z[f"f_{n}"] for n in INTS},
                z["f_class"],
                z["f_software"],
                z["f_market"],
                list(meta["software_ids"]),
                list(meta["markets"]),
            )
            ids = check_ids(z["ids"])
        lengths = {len(ids), len(facts), *(len(c) for c in columns.values()), *(len(c) for c in facts.ints.values())}
        if len(lengths) != 1:
            raise ValueError(f"columns of different lengths {sorted(lengths)}")
        table = DeviceTable(
            DeviceIndex(ids),
            columns,
            meta["tables"],
            crops=meta["crops"],
            limits=meta["limits"],
            fact_columns=facts,
            commodity_median=meta["commodity_median"],
            with_facts=with_facts,
            places=meta["places"],
        )
    except FileNotFoundError:
        return None
    except (Exception, zipfile.BadZipFile) as exc:  # whatever a damaged file raises: it is only a cache
        log.warning("%s: device snapshot unreadable (%s); reading the source again", path, exc)
        return None
    log.debug("%s: %d devices from the snapshot of %s", path, len(table), revision)
    return table
