"""`python -m deploy.probe URL`: exit 0 when URL answers 2xx within 5 s, else 1.

Compose's health check of the HTTP services: the image is python-slim, without curl or wget,
and a health check must run inside the container. Kubernetes probes the same endpoints itself.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 5.0


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].startswith("http://"):
        print("usage: python -m deploy.probe http://HOST:PORT/PATH", file=sys.stderr)
        return 2
    url = argv[0]
    try:
        # urlopen raises for 4xx/5xx (HTTPError); the scheme is checked above.
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS):  # noqa: S310
            return 0
    except (urllib.error.URLError, OSError) as error:
        print(f"{url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
