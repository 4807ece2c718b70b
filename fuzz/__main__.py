"""`python -m fuzz [--n N | --quick] [--readers a,b] [--jobs J] [--seed S]`, `python -m fuzz --replay FILE`.

Prints per reader: inputs, accepted and rejected records, exceptions, unstorable records, time.
Exits 1 when any input raised or was accepted unstorable, after printing each distinct failure
(its exception and place) with a minimised reproducer, also written to fuzz/failures/.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHUNK = 1000  # inputs per task handed to a worker process
KEEP_FAILURES = 3  # distinct failures kept per reader (each minimised)
FAILURES = Path(__file__).resolve().parent / "failures"


@dataclass
class Tally:
    inputs: int = 0
    accepted: int = 0
    rejected: int = 0
    exceptions: int = 0
    unstorable: int = 0
    seconds: float = 0.0  # CPU time in the readers and the storage checks
    generating: float = 0.0  # CPU time making the inputs
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)  # signature -> first case and traceback
    caught: dict[str, dict[str, Any]] = field(default_factory=dict)  # last-resort rejects: exception -> count, case

    def add(self, other: Tally) -> None:
        self.inputs += other.inputs
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.exceptions += other.exceptions
        self.unstorable += other.unstorable
        self.seconds += other.seconds
        self.generating += other.generating
        for signature, failure in other.failures.items():
            if signature not in self.failures and len(self.failures) < KEEP_FAILURES * 4:
                self.failures[signature] = failure
        for name, note in other.caught.items():
            mine = self.caught.setdefault(name, {"count": 0, "case": note["case"]})
            mine["count"] += note["count"]


def signature(exc: BaseException) -> str:
    """What makes two failures the same: the exception's type and the innermost place in the
    project; for an unstorable record, the column and why."""
    from .readers import Unstorable

    root = exc.__cause__ if isinstance(exc, Unstorable) and exc.__cause__ is not None else exc
    if root is exc and isinstance(exc, Unstorable):
        return f"unstorable {exc.where}: {exc.kind}"
    frames = traceback.extract_tb(root.__traceback__)
    project = [f for f in frames if "/dashboard/" in f.filename] or frames
    place = f"{Path(project[-1].filename).name}:{project[-1].lineno}" if project else "?"
    prefix = f"unstorable {exc.where}: {exc.kind}: " if isinstance(exc, Unstorable) else ""
    return f"{prefix}{type(root).__name__} at {place}"


def run_chunk(task: tuple[str, int, int, int]) -> Tally:
    """Generate and run inputs [start, stop) of one reader; the seed makes them reproducible."""
    from . import readers
    from .readers import READERS, Unstorable

    name, start, stop, seed = task
    reader = READERS[name]
    reader.seed_list()
    tally = Tally()
    clock = time.process_time
    for index in range(start, stop):
        began = clock()
        rng = random.Random(f"{seed}:{name}:{index}")
        case = reader.generate(rng, index, reader)
        tally.inputs += 1
        readers.caught.clear()
        generated = clock()
        tally.generating += generated - began
        try:
            accepted, rejected = reader.run(case)
        except Exception as exc:  # noqa: BLE001 - exactly what the fuzz run looks for
            tally.seconds += clock() - generated
            if isinstance(exc, Unstorable):
                tally.unstorable += 1
            else:
                tally.exceptions += 1
            key = signature(exc)
            if key not in tally.failures:
                tally.failures[key] = {"case": case.to_json(), "index": index,
                                       "traceback": "".join(traceback.format_exception(exc))}
            continue
        tally.seconds += clock() - generated
        tally.accepted += accepted
        tally.rejected += rejected
        for exception in readers.caught:
            note = tally.caught.setdefault(exception, {"count": 0, "case": case.to_json()})
            note["count"] += 1
    return tally


def fails_the_same(case_json: dict[str, Any], key: str) -> bool:
    from .readers import Case, run_case

    try:
        run_case(Case.from_json(case_json))
    except Exception as exc:  # noqa: BLE001
        return signature(exc) == key
    return False


def minimise(case_json: dict[str, Any], key: str, budget: int = 1500) -> dict[str, Any]:
    """A smaller input that fails the same way: chunks of each part removed while it still does."""
    best = json.loads(json.dumps(case_json))
    tries = 0
    for name in list(best["parts"]):
        text = best["parts"][name]
        size = max(1, len(text) // 2)
        while size >= 1 and tries < budget:
            at = 0
            changed = False
            while at < len(text) and tries < budget:
                candidate = text[:at] + text[at + size:]
                trial = {**best, "parts": {**best["parts"], name: candidate}}
                tries += 1
                if fails_the_same(trial, key):
                    text, best, changed = candidate, trial, True
                else:
                    at += size
            if not changed:
                size //= 2
    return best


def report_failure(reader: str, key: str, failure: dict[str, Any]) -> None:
    from .readers import Case

    small = minimise(failure["case"], key)
    FAILURES.mkdir(exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in key)[:80]
    path = FAILURES / f"{reader}-{slug}.json"
    path.write_text(json.dumps(small, indent=1))
    case = Case.from_json(small)
    print(f"\n--- {reader}: {key} (input #{failure['index']})")
    print(failure["traceback"].rstrip()[-3000:])
    print("minimal reproducer:")
    for name, data in case.parts.items():
        shown = repr(data)
        print(f"  {name} = {shown[:1500]}{' …' if len(shown) > 1500 else ''}  ({len(data)} bytes)")
    print(f"  format={case.fmt!r} as_text={case.as_text}")
    print(f"  replay: .venv/bin/python -m fuzz --replay {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


def replay(path: str) -> int:
    from .readers import Case, run_case

    case = Case.from_json(json.loads(Path(path).read_text()))
    print(f"{case.reader}: {', '.join(f'{k}={v!r:.300}' for k, v in case.parts.items())} format={case.fmt!r}")
    try:
        print("result (accepted, rejected):", run_case(case))
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    from .readers import READERS

    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="inputs per reader (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="2,000 inputs per reader")
    parser.add_argument("--readers", default=",".join(READERS), help=f"comma-separated, of: {', '.join(READERS)}")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes (default 2)")
    parser.add_argument("--seed", type=int, default=1, help="the run's seed (the same seed, the same inputs)")
    parser.add_argument("--replay", metavar="FILE", help="run one saved reproducer and show its traceback")
    args = parser.parse_args(argv)
    if args.replay:
        return replay(args.replay)
    count = 2000 if args.quick else args.n
    names = [n.strip() for n in args.readers.split(",") if n.strip()]
    unknown = [n for n in names if n not in READERS]
    if unknown:
        parser.error(f"unknown reader(s): {', '.join(unknown)}")
    tasks = [(name, start, min(start + CHUNK, count), args.seed) for name in names for start in range(0, count, CHUNK)]
    tasks.sort(key=lambda t: (t[1], names.index(t[0])))  # interleaved: every reader progresses together
    tallies = {name: Tally() for name in names}
    began = time.monotonic()
    if args.jobs > 1 and len(tasks) > 1:
        context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with context.Pool(args.jobs) as pool:
            for task, tally in zip(tasks, pool.imap(run_chunk, tasks)):
                tallies[task[0]].add(tally)
    else:
        for task in tasks:
            tallies[task[0]].add(run_chunk(task))
    wall = time.monotonic() - began
    print(f"fuzz: {count:,} inputs per reader, seed {args.seed}, {args.jobs} process(es), {wall:.0f} s wall clock")
    print(f"{'reader':<14} {'inputs':>9} {'accepted':>9} {'rejected':>9} {'exceptions':>10} {'unstorable':>10} "
          f"{'time':>8} {'generating':>10}")
    for name, t in tallies.items():
        print(f"{name:<14} {t.inputs:>9,} {t.accepted:>9,} {t.rejected:>9,} {t.exceptions:>10,} {t.unstorable:>10,} "
              f"{t.seconds:>7.1f}s {t.generating:>9.1f}s")
    print("(accepted and rejected count records: a file holds several. time: CPU seconds in the reader and the "
          "storage checks; generating: making the inputs)")
    for name, t in tallies.items():
        for exception, note in t.caught.items():
            shown = ", ".join(f"{k}={v[:200]!r}" for k, v in note["case"]["parts"].items())
            print(f"note: {name}: {note['count']:,} rejects say only 'unreadable ({exception})' (an exception the "
                  f"reader caught; its reason names no field), e.g. {shown}")
    failed = False
    for name, t in tallies.items():
        for key, failure in list(t.failures.items())[:KEEP_FAILURES * 4]:
            failed = True
            report_failure(name, key, failure)
    if failed:
        print("\nFAILED: inputs above raised or were accepted but could not be stored", file=sys.stderr)
        return 1
    print("every input was stored or rejected with a reason")
    return 0


if __name__ == "__main__":
    sys.exit(main())
