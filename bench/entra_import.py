"""Benchmark: parsing Graph provisioning pages into ProvisioningEvents against decoding them alone.

    .venv/bin/python bench/entra_import.py [--records 100000] [--page-size 1000]

(a) decode: read every page file and orjson.loads it (the floor: nothing is looked at).
(b) ours:   read_events() on every page file: decode, validate, normalise, redact, and the
            dedupe key of each event (what the loader will need per record).
Both run in the same process, on the same files, after one warm-up pass each. Prints records/s
and the ratio b/a. (The database write is not here yet; the lead adds it.) Figures only.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))


def pages(records: int, page_size: int) -> list[Path]:
    from dashboard.entra.generate import write_pages

    directory = OUT / f"entra-pages-{records}-{page_size}"
    existing = sorted(directory.glob("page-*.json"))
    if existing and len(existing) == (records + page_size - 1) // page_size:
        return existing
    started = time.perf_counter()
    paths = write_pages(directory, records, page_size=page_size)
    print(f"generated {records:,} records in {len(paths)} pages in {time.perf_counter() - started:.1f} s -> {directory}")
    return paths


def decode(paths: list[Path]) -> tuple[float, int]:
    started = time.perf_counter()
    count = 0
    for path in paths:
        count += len(orjson.loads(path.read_bytes())["value"])
    return time.perf_counter() - started, count


def ours(paths: list[Path]) -> tuple[float, int, int]:
    from dashboard.entra.parse import dedupe_key, read_events
    from dashboard.entra.records import ProvisioningEvent

    started = time.perf_counter()
    count = problems = 0
    for path in paths:
        with open(path, "rb") as stream:
            for item in read_events(stream, "entra-graph"):
                if item.__class__ is ProvisioningEvent:
                    dedupe_key(item)
                    count += 1
                else:
                    problems += 1
    return time.perf_counter() - started, count, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each; the best is reported")
    args = parser.parse_args()
    paths = pages(args.records, args.page_size)
    size = sum(p.stat().st_size for p in paths)
    decode(paths[:5])
    ours(paths[:5])  # warm-up: imports, caches
    a = min(decode(paths)[0] for _ in range(args.repeat))
    runs = [ours(paths) for _ in range(args.repeat)]
    b = min(r[0] for r in runs)
    _, events, problems = runs[0]
    print(f"{args.records:,} Graph records, {len(paths)} page files, {size / 1e6:.1f} MB")
    print(f"(a) decode only (orjson.loads):        {a:6.2f} s  {args.records / a:>10,.0f} records/s")
    print(f"(b) read_events -> ProvisioningEvent:  {b:6.2f} s  {events / b:>10,.0f} records/s"
          f"  ({events:,} events, {problems} problems)")
    print(f"ratio b/a: {b / a:.1f}x the time of decoding alone")


if __name__ == "__main__":
    main()
