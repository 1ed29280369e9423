"""`python -m tools.demo`: generate a calibrated demo population, load it through ingest, check
generated files against TPMAP's figures, or all of it at once on the local stack (`run`, what
`make run` does). See tools/demo/README.md."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from deploy.local.connection_files import read_credentials
from deploy.local.layout import StackLayout
from tools.demo.check import check
from tools.demo.files import FORMATS, Format
from tools.demo.generate import Request, already_generated, expand_provinces, generate
from tools.demo.load import LoadError, ingest_access, load
from tools.demo.published import DEFAULT_DATA_DIR, MissingDataError, province_codes
from tools.demo.settle import NotSettledError, wait_until_settled

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

    demo = commands.add_parser(
        "run",
        help="on the local stack (`make up`): generate unless already generated, load, wait "
        "until every figure is in, and say where to look",
    )
    demo.add_argument("--provinces", action="append", metavar="CODES", default=None)
    demo.add_argument("--scale", type=float, default=1.0)
    demo.add_argument("--seed", type=int, default=DEFAULT_SEED)
    demo.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    demo.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the figures")
    demo.add_argument(
        "--start-stack",
        action="store_true",
        help="start the local stack (python -m deploy.local up) while the population is generated",
    )

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
        if args.command == "run":
            return _run(args)
        return check(args.folder, args.data_dir, _report)
    except (
        MissingDataError,
        LoadError,
        NotSettledError,
        ValueError,
        FileNotFoundError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _request(args: argparse.Namespace, out: Path | None = None) -> Request:
    if not 0 < args.scale <= 1:
        raise ValueError(f"--scale must be above 0 and at most 1, got {args.scale}")
    every = province_codes(args.data_dir)
    provinces = (
        tuple(every)
        if getattr(args, "country", False)
        else expand_provinces(args.provinces or ["49"], every)
    )
    if out is None:
        out = DEFAULT_OUT / f"{'-'.join(provinces)}-scale{args.scale:g}-seed{args.seed}"
    file_format: Format = getattr(args, "file_format", "ndjson")
    return Request(provinces, args.scale, args.seed, args.data_dir, out, file_format)


def _generate(args: argparse.Namespace) -> int:
    request = _request(args, args.out)
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
    return _load_folder(args.folder, args.url or url, keys, args.records_per_request)


def _load_folder(folder: Path, url: str, keys: dict[str, str], records_per_request: int) -> int:
    results = load(folder, url, keys, records_per_request, _report)
    for source, result in results.items():
        print(f"{source}: {result.accepted:,} accepted, {result.rejected:,} rejected")
        for rejection in result.first_errors:
            print(f"  line {rejection.get('line')}: {rejection.get('errors')}")
    return 1 if any(r.rejected for r in results.values()) else 0


def _run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    request = _request(args)
    # The stack's start is mostly waiting (the JVM, Maven, PostgreSQL's initdb) and generating
    # is CPU: side by side they take the time of the longer one.
    stack = (
        subprocess.Popen([sys.executable, "-m", "deploy.local", "up"]) if args.start_stack else None
    )
    if already_generated(request):
        _report(f"using the population already generated in {request.out}")
    else:
        generate(request, _report)
    if stack is not None and stack.wait() != 0:
        _report(
            f"error: the local stack did not start (python -m deploy.local up: {stack.returncode})"
        )
        return 1
    credentials_file = StackLayout.from_env(os.environ).credentials_file
    credentials = read_credentials(credentials_file)
    url, keys = ingest_access(credentials)
    if _load_folder(request.out, url, keys, 5000):
        return 1
    reporting_url = str(credentials["reporting"]["url"])
    _report("waiting until the matcher and reporting have taken in every record ...")
    wait_until_settled(
        str(credentials["kafka"]["bootstrap_servers"]),
        reporting_url,
        _report,
        timeout_seconds=args.timeout,
    )
    logbook = credentials.get("logbook", {})
    print(
        f"\nprovinces {', '.join(request.provinces)} loaded and reported in "
        f"{time.monotonic() - started:.0f} s\n"
        f"  dashboard          {reporting_url}/\n"
        f"  reporting API      {reporting_url}/docs\n"
        f"  logbook API        {logbook.get('url', '?')}/docs\n"
        f"  ingest API         {url}/docs\n"
        "  logbook tokens (Authorization: Bearer ...), one per role:"
    )
    for role, token in sorted(logbook.get("tokens", {}).items()):
        print(f"    {role:<10} {token}")
    print(f"  every credential: {credentials_file}\n  stop it all: make down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
