"""The database-free half of ingestion: raw lines to rows ready to insert.

Parse, redact, dedupe key, classify and pack need nothing but the line and the settings, so for
large inputs they run in worker processes (`Workers`) while the loader does the database work
of the batch before; small inputs (an HTTP push) are prepared in-process. A worker imports only
this module and the pure modules it uses (no Flask, no SQLAlchemy), which keeps it small.

`Preparer.prepare` turns a list of numbered lines into one item per line, in order:
  None           a blank line,
  ParseProblem   a rejected line (invalid, or naming a job it may not),
  Prepared       a tuple: the exchange columns but the user, and the user's names (`P_*`);
  Deferred       a tuple (job_id, dedupe, exchange, line_no) for the rare exchange that classify or pack
                 raised on: the loader repeats them, in-process, only if the line is not a
                 duplicate (as it always did), so that the error surfaces exactly where it used to.
"""
from __future__ import annotations

import gc
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import traceback
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from queue import SimpleQueue
from typing import IO, Any

import orjson

from dashboard.formats import codec
from dashboard.formats.dedupe import stable_hash
from dashboard.formats.limits import fit
from dashboard.formats.scim.classify import classify
from dashboard.formats.scim.parse import RAW_KEEP, parse_line
from dashboard.formats.scim.records import Exchange, ParseProblem
from dashboard.formats.scim.redact import (
    RAW_WINDOW,
    RedactionRules,
    redact,
    redact_raw,
    redact_text,
)
from dashboard.times import to_us

# Fields of a Prepared tuple. The first thirteen are exchange columns; then the user's names,
# and the lookup's answer (the `found` column).
(P_JOB_ID, P_DEDUPE, P_TS_US, P_METHOD, P_OPERATION, P_STATUS, P_FAILED, P_DURATION_MS, P_REQUEST_ID,
 P_CYCLE_KEY, P_SCIM_TYPE, P_ERROR_DETAIL, P_BLOB, P_USER_NAME, P_EXTERNAL_ID, P_SCIM_ID, P_FOUND,
 P_LINE_NO) = range(18)
DEFERRED_LEN = 4


@dataclass(frozen=True)
class Preparer:
    """Everything preparing a line needs; pickled once to each worker."""

    rules: RedactionRules
    guid_lookups_are_tests: bool
    job_id: int
    job_name: str
    jobs: dict[str, int] = field(default_factory=dict)  # every known job by name
    only_job: bool = False
    not_after_us: int | None = None  # lines dated later than this are rejected (a clock gone wrong)

    def prepare(self, lines: Iterable[tuple[int, bytes | str]]) -> list[Any]:
        out: list[Any] = []
        append = out.append
        rules, guid_tests = self.rules, self.guid_lookups_are_tests
        for line_no, raw in lines:
            item = parse_line(line_no, raw)
            if item is None:
                append(item)
                continue
            if item.__class__ is ParseProblem:
                append(rejected(item.line_no, item.reason, raw, rules))  # type: ignore[union-attr]
                continue
            job_id, reason = self.job_of(item)  # type: ignore[arg-type]
            if job_id is None:
                append(rejected(line_no, reason, raw, rules))
                continue
            if self.not_after_us is not None and to_us(item.ts) > self.not_after_us:  # type: ignore[union-attr]
                append(rejected(line_no, future_reason(item.ts, self.not_after_us), raw, rules))  # type: ignore[union-attr]
                continue
            clean = redact(item, rules)  # type: ignore[arg-type]
            dedupe = dedupe_key(clean)
            try:
                found = classify(clean, guid_lookups_are_tests=guid_tests)
                blob = codec.pack(blob_of(clean))
            except Exception:  # noqa: BLE001 - repeated by the loader if the line is new
                append((job_id, dedupe, clean, line_no))
                continue
            error = found.error
            append((
                job_id, dedupe, to_us(clean.ts), clean.method, found.operation.value, clean.status, found.failed,
                clean.duration_ms, fit(clean.request_id or None, 200),
                fit(clean.cycle_id or None, 200), error.scim_type if error else None,
                error.detail if error else None, blob, found.user_name, found.external_id, found.scim_id, found.found,
                line_no,
            ))
        return out

    def job_of(self, exchange: Exchange) -> tuple[int | None, str]:
        if not exchange.job or exchange.job == self.job_name:
            return self.job_id, ""
        if self.only_job:
            return None, f"field 'job' names '{exchange.job[:100]}', but this token is for job '{self.job_name}'"
        job_id = self.jobs.get(exchange.job)
        if job_id is None:
            return None, f"field 'job' names an unknown job '{exchange.job[:100]}' (add it with `flask job add`)"
        return job_id, ""


def rejected(line_no: int, reason: str, raw: bytes | str, rules: RedactionRules) -> ParseProblem:
    """The reject of a line: its reason and its text, both redacted, the text from the whole line
    and cut to RAW_KEEP characters only after (a secret named after the cut is hidden too)."""
    text = raw[:RAW_WINDOW].decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text.replace("\x00", "\\x00").rstrip("\r\n")
    if text[:1] == "\ufeff":
        text = text[1:]
    return ParseProblem(line_no, redact_text(reason, rules) or "", redact_raw(text, rules, keep=RAW_KEEP))


def future_reason(ts: Any, not_after_us: int) -> str:
    limit = datetime.fromtimestamp(not_after_us / 1_000_000, UTC).replace(microsecond=0)
    return (f"field 'ts' is {ts.isoformat()}, later than {limit.isoformat()} (the time of ingest plus "
            f"ingest.future_tolerance_minutes): a clock ahead of time; it is not stored")


def blob_of(exchange: Exchange) -> dict:
    """What is kept of an exchange beyond its columns (all of it redacted already)."""
    blob = {
        "path": exchange.path,
        "query": exchange.query,
        "client": exchange.client,
        "request_headers": exchange.request_headers,
        "request_body": exchange.request_body,
        "response_body": exchange.response_body,
        "extra": exchange.extra or None,
    }
    return {k: v for k, v in blob.items() if v is not None}


def dedupe_key(exchange: Exchange) -> int:
    """The exchange's key, unique per job: a hash of its request id, else of its content.

    Stored keys must stay reproducible: never change this formula.
    """
    if exchange.request_id:
        return stable_hash(b"r\0" + exchange.request_id.encode("utf-8", "replace"))
    content = orjson.dumps(
        [
            exchange.ts.isoformat(), exchange.method, exchange.path, exchange.query, exchange.status,
            exchange.duration_ms, exchange.client, exchange.cycle_id, exchange.request_headers,
            exchange.request_body, exchange.response_body,
        ],
        option=orjson.OPT_SORT_KEYS,
    )
    return stable_hash(b"c\0" + content)


# -- worker processes ------------------------------------------------------------------------------

CHUNK_LINES = 500  # lines per task sent to a worker
CHUNK_BYTES = 2 << 20  # ... or fewer, when they are long
_FRAME = struct.Struct("<Q")
# Run by each worker: make `dashboard` a bare package (its __init__ would import Flask and
# the whole app), then serve. argv[1] is the directory of the dashboard package.
_BOOT = (
    "import sys, types; pkg = types.ModuleType('dashboard'); pkg.__path__ = [sys.argv[1]]; "
    "sys.modules['dashboard'] = pkg; from dashboard.ingest.prepare import serve; serve()"
)


class WorkerError(RuntimeError):
    """A worker process failed or ended without answering."""


class _Worker:
    """One worker process, fed and read by two threads so that the pipes never block the loader."""

    def __init__(self, preparer: Preparer) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, str(Path(__file__).resolve().parent.parent)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
        )
        self.outbox: SimpleQueue[bytes | None] = SimpleQueue()
        self.inbox: SimpleQueue[bytes | None] = SimpleQueue()
        self.outbox.put(pickle.dumps(preparer, pickle.HIGHEST_PROTOCOL))
        self.writer = threading.Thread(target=self._write, name="ingest-worker-writer", daemon=True)
        self.reader = threading.Thread(target=self._read, name="ingest-worker-reader", daemon=True)
        self.writer.start()
        self.reader.start()

    def send(self, lines: list[tuple[int, bytes | str]]) -> None:
        self.outbox.put(pickle.dumps(lines, pickle.HIGHEST_PROTOCOL))

    def receive(self) -> list[Any]:
        frame = self.inbox.get()
        if frame is None:
            raise WorkerError(f"an ingest worker ended unexpectedly (exit status {self.proc.wait()})")
        try:
            status, payload = pickle.loads(frame)
        except Exception as exc:  # noqa: BLE001 - e.g. an error type that cannot be rebuilt here
            raise WorkerError(f"an ingest worker answered something unreadable: {exc!r}") from exc
        if status == "ok":
            return payload
        if isinstance(payload, BaseException):
            raise payload
        raise WorkerError(f"an ingest worker failed:\n{payload}")

    def close(self) -> None:
        self.outbox.put(None)

    def _write(self) -> None:
        stream: IO[bytes] = self.proc.stdin  # type: ignore[assignment]
        try:
            while (frame := self.outbox.get()) is not None:
                stream.write(_FRAME.pack(len(frame)))
                stream.write(frame)
                stream.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the worker is gone; the reader reports it
        finally:
            try:
                stream.close()
            except OSError:
                pass

    def _read(self) -> None:
        stream: IO[bytes] = self.proc.stdout  # type: ignore[assignment]
        try:
            while True:
                head = stream.read(_FRAME.size)
                if len(head) < _FRAME.size:
                    break
                (size,) = _FRAME.unpack(head)
                frame = stream.read(size)
                if len(frame) < size:
                    break
                self.inbox.put(frame)
        except (OSError, ValueError):
            pass
        finally:
            self.inbox.put(None)


class Workers:
    """Prepare lines in `count` worker processes; results come back in the order of the lines.

    Memory stays bounded: at most `ahead_lines` lines (and `ahead_bytes` bytes) are out at the
    workers or waiting in their results at any time.

    With `steal`, the caller's process prepares the next chunk itself instead of waiting when the
    result it needs next has not arrived yet (the workers are behind; the loader would sit idle).
    Those chunks wait for their turn in memory: at most as many lines and bytes again.
    """

    def __init__(self, preparer: Preparer, count: int, *, ahead_lines: int, ahead_bytes: int = 64 << 20,
                 steal: bool = False) -> None:
        self.workers: list[_Worker] = []
        try:
            for _ in range(count):
                self.workers.append(_Worker(preparer))
        except BaseException:
            self.close(kill=True)
            raise
        self.ahead_lines = max(ahead_lines, CHUNK_LINES * count)
        self.ahead_bytes = ahead_bytes
        self._next = 0
        self._local = preparer if steal else None
        self.stolen = 0  # chunks prepared in this process instead of waiting

    def prepare(self, lines: Iterator[tuple[int, bytes | str]]) -> Iterator[Any]:
        """One prepared item per line of `lines`, in order."""
        # (worker, lines, bytes); a chunk prepared here: (None, lines, (bytes, its items))
        pending: deque[tuple[_Worker | None, int, Any]] = deque()
        out_lines = out_bytes = 0
        held_lines = held_bytes = 0  # in the chunks prepared here, waiting for their turn
        exhausted = False

        def chunk_of() -> tuple[list[tuple[int, bytes | str]], int]:
            nonlocal exhausted
            chunk: list[tuple[int, bytes | str]] = []
            size = 0
            for numbered in lines:
                chunk.append(numbered)
                size += len(numbered[1])
                if len(chunk) >= CHUNK_LINES or size >= CHUNK_BYTES:
                    break
            else:
                exhausted = True
            return chunk, size

        while True:
            while not exhausted and out_lines < self.ahead_lines and out_bytes < self.ahead_bytes:
                chunk, size = chunk_of()
                if not chunk:
                    break
                worker = self.workers[self._next]
                self._next = (self._next + 1) % len(self.workers)
                worker.send(chunk)
                pending.append((worker, len(chunk), size))
                out_lines += len(chunk)
                out_bytes += size
            if not pending:
                return
            worker, count, size = pending[0]
            if (self._local is not None and worker is not None and not exhausted and worker.inbox.empty()
                    and held_lines < self.ahead_lines and held_bytes < self.ahead_bytes):
                chunk, size = chunk_of()  # the worker is behind: this process takes the next chunk
                if chunk:
                    pending.append((None, len(chunk), (size, self._local.prepare(chunk))))
                    held_lines += len(chunk)
                    held_bytes += size
                    self.stolen += 1
                continue
            pending.popleft()
            if worker is None:
                held_lines -= count
                held_bytes -= size[0]
                yield from size[1]
                continue
            items = worker.receive()
            out_lines -= count
            out_bytes -= size
            yield from items

    def close(self, *, kill: bool = False) -> None:
        """End the workers: let them finish (closing their input), or kill them."""
        for worker in self.workers:
            if kill:
                worker.proc.kill()
            worker.close()
        for worker in self.workers:
            try:
                worker.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()
            worker.writer.join(timeout=1)
            worker.reader.join(timeout=1)
            if worker.proc.stdout:
                worker.proc.stdout.close()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(kill=exc_type is not None)


def serve() -> None:
    """A worker's main loop: read tasks from stdin, answer on stdout, end at end of input."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the loader's to handle
    # A worker only ever prepares a large input: its garbage collector runs less often, as the
    # loader's does meanwhile (ingest/scim.py LARGE_INPUT_GC_THRESHOLD; not imported: a worker
    # stays free of the loader's modules).
    gc.set_threshold(100_000, *gc.get_threshold()[1:])
    source = sys.stdin.buffer
    sink = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not corrupt the answers

    def read() -> Any:
        head = source.read(_FRAME.size)
        if len(head) < _FRAME.size:
            return None
        (size,) = _FRAME.unpack(head)
        return pickle.loads(source.read(size))

    try:
        preparer = read()
        if preparer is None:
            return
        while (lines := read()) is not None:
            try:
                answer = pickle.dumps(("ok", preparer.prepare(lines)), pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # noqa: BLE001 - handed to the loader, which raises it
                try:
                    answer = pickle.dumps(("error", exc), pickle.HIGHEST_PROTOCOL)
                except Exception:  # noqa: BLE001 - an error that cannot be pickled: send its text
                    answer = pickle.dumps(("error", "".join(traceback.format_exception(exc))), pickle.HIGHEST_PROTOCOL)
            sink.write(_FRAME.pack(len(answer)))
            sink.write(answer)
            sink.flush()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the loader is gone (killed, or failed): nothing left to answer
