"""`python -m tools.demo`: generate a calibrated demo population, load it through ingest, and
check generated files against TPMAP's figures. See tools/demo/README.md."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from deploy.local.connection_files import read_credentials
from deploy.local.layout import StackLayout
from tools.demo.check import check
from tools.demo.files import FORMATS
from tools.demo.generate import Request, expand_provinces, generate
from tools.demo.load import LoadError, ingest_access, load
from tools.demo.published import DEFAULT_DATA_DIR, MissingDataError, province_codes

DEFAULT_OUT = Path(".local/demo")
DEFAULT_SEED = 2561


def _report(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.demo",
        description="A synthetic population calibrated to TPMAP's published 2561 figures.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    make = commands.add_parser("generate", help="write the population's files")
    where = make.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--provinces",
        action="append",
        metavar="CODES",
        help="province codes, comma-separated or repeated (e.g. 49 or 49,75)",
    )
    where.add_argument("--country", action="store_true", help="every province TPMAP published")
    make.add_argument(
        "--scale", type=float, default=1.0, help="share of TPMAP's households (default 1: exact)"
    )
    make.add_argument("--seed", type=int, default=DEFAULT_SEED)
    make.add_argument("--format", choices=FORMATS, default="ndjson", dest="file_format")
    make.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"folder (default {DEFAULT_OUT})"
    )
    make.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"the shared/data folder (default {DEFAULT_DATA_DIR})",
    )

    send = commands.add_parser("load", help="post the files to ingest's HTTP API")
    send.add_argument("--dir", type=Path, default=DEFAULT_OUT, dest="folder")
    send.add_argument(
        "--credentials",
        type=Path,
        default=None,
        help="default: .local/credentials.json of the stack (TPMAP_HOME if set)",
    )
    send.add_argument("--url", help="ingest's URL (default: from the credentials file)")
    send.add_argument("--records-per-request", type=int, default=5000)

    verify = commands.add_parser(
        "check", help="compare generated NDJSON files with TPMAP's figures (full scale)"
    )
    verify.add_argument("--dir", type=Path, default=DEFAULT_OUT, dest="folder")
    verify.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "generate":
            return _generate(args)
        if args.command == "load":
            return _load(args)
        return check(args.folder, args.data_dir, _report)
    except (MissingDataError, LoadError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _generate(args: argparse.Namespace) -> int:
    if not 0 < args.scale <= 1:
        raise ValueError(f"--scale must be above 0 and at most 1, got {args.scale}")
    every = province_codes(args.data_dir)
    provinces = tuple(every) if args.country else expand_provinces(args.provinces, every)
    request = Request(provinces, args.scale, args.seed, args.data_dir, args.out, args.file_format)
    summary = generate(request, _report)
    print(
        f"wrote {summary.households:,} households, {summary.persons:,} persons "
        f"({', '.join(f'{n:,} {s}' for s, n in summary.records.items())} records) to "
        f"{args.out} in {summary.seconds:.1f} s"
    )
    if summary.notes or summary.shortfalls:
        print(
            f"{len(summary.notes)} notes on TPMAP's figures, {len(summary.shortfalls)} districts "
            f"with figures not met exactly: see {args.out / 'manifest.json'}"
        )
    return 0


def _load(args: argparse.Namespace) -> int:
    credentials_file = args.credentials or StackLayout.from_env(os.environ).credentials_file
    url, keys = ingest_access(read_credentials(credentials_file))
    results = load(args.folder, args.url or url, keys, args.records_per_request, _report)
    for source, result in results.items():
        print(f"{source}: {result.accepted:,} accepted, {result.rejected:,} rejected")
        for rejection in result.first_errors:
            print(f"  line {rejection.get('line')}: {rejection.get('errors')}")
    return 1 if any(r.rejected for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
