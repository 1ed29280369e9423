"""`python -m tools.demo check`: the generated files' figures, computed with the matcher's
rules from the records as ingest would accept them, against TPMAP's published figures for every
province and district generated, under every mask."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

from services.contracts.events import WelfareStatus
from services.contracts.records import BmnHousehold, CivilEvent, WelfareRegistration, parse_record
from services.ingest.sources import BMN, CIVIL, WELFARE
from services.matcher.rules import earliest_death, welfare_order
from services.reporting.tpmap_published import read_published
from tools.demo.figures import all_differences, tally
from tools.demo.files import read_manifest, read_ndjson, source_file
from tools.demo.published import district_codes, tpmap_dir


def check(folder: Path, data_dir: Path, report: Callable[[str], None]) -> int:
    manifest = read_manifest(folder)
    if manifest.get("format") != "ndjson":
        report("check reads NDJSON files; generate with --format ndjson to check")
        return 2
    if manifest.get("scale") != 1:
        report(
            f"scale {manifest.get('scale')}: only a full-scale population reproduces TPMAP's figures"
        )
        return 2
    report("reading and validating the records ...")
    welfare: dict[str, WelfareRegistration] = {}
    for raw in read_ndjson(source_file(folder, WELFARE, "ndjson")):
        registration = parse_record(WelfareRegistration, raw)
        known = welfare.get(registration.citizen_id)
        if known is None or welfare_order(
            registration.updated_at, registration.round
        ) > welfare_order(known.updated_at, known.round):
            welfare[registration.citizen_id] = registration
    deaths: dict[str, date] = {}
    for raw in read_ndjson(source_file(folder, CIVIL, "ndjson")):
        event = parse_record(CivilEvent, raw)
        deaths[event.citizen_id] = earliest_death(deaths.get(event.citizen_id), event.date)
    statuses: dict[str, WelfareStatus] = {cid: r.status for cid, r in welfare.items()}
    households = (
        parse_record(BmnHousehold, raw) for raw in read_ndjson(source_file(folder, BMN, "ndjson"))
    )
    tallies = tally(households, statuses, deaths)
    provinces = [str(p) for p in manifest["provinces"]]
    areas = [*provinces, *(d for p in provinces for d in district_codes(data_dir, p))]
    folder_2561 = tpmap_dir(data_dir)
    found = all_differences(
        tallies, areas, lambda code, mask: read_published(folder_2561, code, mask)
    )
    exact = [d for d in found if d.exact]
    close = [d for d in found if not d.exact]
    report(
        f"{len(areas)} areas x 31 masks: {len(exact)} exact figures differ, "
        f"{len(close)} per-indicator figures differ "
        f"({sum(not d.acceptable for d in close)} by more than 1 %)"
    )
    for difference in sorted(found, key=lambda d: (d.exact, d.relative), reverse=True)[:20]:
        report(
            f"  {difference.area} {difference.mask} {difference.figure}: "
            f"ours {difference.ours}, TPMAP {difference.published}"
        )
    return 0 if all(d.acceptable for d in found) else 1
