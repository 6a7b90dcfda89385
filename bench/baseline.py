"""bench.baseline: the bare minimum a script needs to deliver a folder of invoices, run as its own process.

    python bench/baseline.py bulk FOLDER --token-url URL --base-url URL
    python bench/baseline.py per-file FOLDER --token-url URL --base-url URL [--limit N]

`bulk`: get a token, read and SHA-256 every file, post them all as multipart parts in as few requests as
the marketplace allows (1,000 files per request), wait `--first-poll-seconds`, then poll each import until
it is done (once, when the wait matched the processing time). No settling, no validation, no journal,
no report: the floor invoicesync's throughput is compared with.

`per-file`: what a cron job with curl does: one `curl -F` process and one request per file to the bulk
endpoint (fire and forget, no poll); with httpx and a fresh connection per request where curl is missing.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

MAX_FILES_PER_REQUEST = 1000  # Octopia's (and the sandbox's) limit per request
CONTENT_TYPES = {"pdf": "application/pdf", "xml": "application/xml"}
SELLER_ID = "98979"


def token(client: httpx.Client, token_url: str) -> str:
    form = {"grant_type": "client_credentials", "client_id": "bench-client", "client_secret": "bench-secret"}
    response = client.post(token_url, data=form)
    response.raise_for_status()
    value: str = response.json()["access_token"]
    return value


def content_type(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix.lower().lstrip("."), "application/octet-stream")


def bulk(folder: Path, token_url: str, base_url: str, first_poll_seconds: float) -> int:
    paths = sorted(folder.iterdir())
    with httpx.Client(timeout=300, headers={"SellerId": SELLER_ID}) as client:
        headers = {"Authorization": f"Bearer {token(client, token_url)}"}
        import_ids = []
        for start in range(0, len(paths), MAX_FILES_PER_REQUEST):
            parts = []
            for path in paths[start : start + MAX_FILES_PER_REQUEST]:
                data = path.read_bytes()
                hashlib.sha256(data).hexdigest()  # what any careful script records
                parts.append(("files", (path.name, data, content_type(path))))
            response = client.post(f"{base_url}/order-invoice-imports", files=parts, headers=headers)
            response.raise_for_status()
            import_ids.append(response.json()["importId"])
        time.sleep(first_poll_seconds)
        polls = 0
        for import_id in import_ids:
            while True:
                polls += 1
                answer = client.get(f"{base_url}/order-invoice-imports/{import_id}", headers=headers).json()
                if answer["status"] not in ("Pending", "Running"):
                    break
                time.sleep(0.05)
    print(f"requests={len(import_ids)} polls={polls}")
    return 0


def per_file(folder: Path, token_url: str, base_url: str, limit: int) -> int:
    paths = sorted(folder.iterdir())[:limit]
    url = f"{base_url}/order-invoice-imports"
    with httpx.Client(timeout=60) as client:
        bearer = token(client, token_url)
    curl = shutil.which("curl")
    for path in paths:
        if curl is not None:
            subprocess.run(
                [curl, "-sSf", "-o", "/dev/null", "-H", f"Authorization: Bearer {bearer}",
                 "-H", f"SellerId: {SELLER_ID}", "-F", f"files=@{path};type={content_type(path)}", url],
                check=True,
            )
        else:
            with open(path, "rb") as stream:
                httpx.post(
                    url,
                    files=[("files", (path.name, stream, content_type(path)))],
                    headers={"Authorization": f"Bearer {bearer}", "SellerId": SELLER_ID},
                    timeout=60,
                ).raise_for_status()
    print(f"requests={len(paths)} tool={'curl' if curl else 'httpx'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("bulk", "per-file"))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--token-url", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--first-poll-seconds", type=float, default=0.3)
    parser.add_argument("--limit", type=int, default=sys.maxsize)
    args = parser.parse_args()
    if args.mode == "bulk":
        return bulk(args.folder, args.token_url, args.base_url, args.first_poll_seconds)
    return per_file(args.folder, args.token_url, args.base_url, args.limit)


if __name__ == "__main__":
    sys.exit(main())
