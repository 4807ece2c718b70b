"""Recorded lines into the database through the ingest, in batches, never on the request path.

`submit` puts a line (redacted already, see lines.py) on a bounded in-memory queue and returns at
once; a background thread takes what has gathered (up to `batch_lines`, or what came within
`flush_seconds`) and stores it with `ingest.scim.ingest_lines`, the path of a file or a push
(dedupe, rejects, cycles, users, health). While the database is unreachable or slow to answer,
batches go to a spool directory instead (one file per batch, written whole then renamed), and
are ingested, oldest first, as soon as the database answers again. Every line carries its
`request_id`, the ingest's dedupe key: a batch stored just before the database went away and
spooled too, or a spool file ingested again after a crash, is never stored twice.

The spool is bounded (`spool_max_bytes`): a batch that would overflow it is dropped, counted and
logged as an error naming the directory and the option to raise; the traffic itself still flows.
"""
from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from dashboard.ingest.scim import IngestOptions, IngestResult, ingest_lines
from dashboard.models import Job

log = logging.getLogger(__name__)
SPOOL_SUFFIX = ".jsonl"


@dataclass
class Counters:
    submitted: int = 0
    stored: int = 0  # accepted by the ingest
    duplicates: int = 0
    rejected: int = 0
    spooled: int = 0  # lines written to the spool (also counted in stored once drained)
    dropped: int = 0  # lines lost because the spool was full
    database_errors: int = 0


class CaptureWriter:
    """The background writer of one capture (one job): into the database (this class) or, as
    PushWriter, to a dashboard's push API."""

    store_name = "database"

    def __init__(self, engine: Engine | None, job: Job | _Job, options: IngestOptions | None, spool_dir: Path, *,
                 spool_max_bytes: int = 256 * 1_048_576, queue_lines: int = 50_000, batch_lines: int = 500,
                 flush_seconds: float = 1.0, retry_seconds: float = 5.0, source: str | None = None,
                 isolated: bool = False) -> None:
        self.engine = engine
        # isolated: the ingest runs in a child process of its own (on the same database URL), so
        # that its CPU work (parsing, resolving, folding) never holds the GIL the request threads need
        self._url = engine.url.render_as_string(hide_password=False) if isolated and engine is not None else None
        self._pooled = not isinstance(getattr(engine, "pool", None), NullPool)  # the child's engine pools alike
        self._pool: ProcessPoolExecutor | None = None
        self._spool_used: int | None = None  # bytes in the spool, once counted
        self.job_id, self.job_name = job.id, job.name
        self.options = options
        self.spool_dir = Path(spool_dir)
        self.spool_max_bytes = spool_max_bytes
        self.batch_lines = batch_lines
        self.flush_seconds = flush_seconds
        self.retry_seconds = retry_seconds
        self.source = source or f"capture:{job.name}"
        self.counters = Counters()
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=queue_lines)
        self._lock = threading.Lock()  # the spool and the counters
        self._names = itertools.count()
        self._stop = threading.Event()
        self._flush_requests: queue.Queue[threading.Event] = queue.Queue()
        self._database_ok = True
        self._next_retry = 0.0
        self._thread = threading.Thread(target=self._run, name=f"capture-writer-{job.name}", daemon=True)

    # -- the request side ------------------------------------------------------------------------

    def start(self) -> CaptureWriter:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        if self._url is not None:  # the child starts now (imports, engine), not on the first batch
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            self._pool.submit(_child_engine, self._url, self._pooled)
        self._thread.start()
        return self

    def submit(self, line: bytes) -> None:
        """Record one line; never blocks on the database (a full queue goes to the spool)."""
        with self._lock:
            self.counters.submitted += 1
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self._spool([line])

    # -- control --------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every line submitted so far is stored or spooled (and the spool drained, if
        the database answers). False if `timeout` passed first."""
        done = threading.Event()
        self._flush_requests.put(done)
        return done.wait(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Store (or spool) what is queued, then stop the thread (and the ingest process)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    @property
    def spool_bytes(self) -> int:
        return sum(path.stat().st_size for path in self._spool_files())

    def spool_files(self) -> list[Path]:
        return list(self._spool_files())

    # -- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()
            waiting = self._take_flush_requests()
            batch = self._gather(0 if (stopping or waiting) else self.flush_seconds)
            if self._retry_due(force=bool(waiting) or stopping):
                self._drain()
            if batch:
                if self._database_ok:
                    self._store(batch)
                else:
                    self._spool(batch)
            if not self._queue.empty():
                waiting.extend(self._take_flush_requests())
                self._requeue_flush(waiting)
                continue
            for done in waiting:
                done.set()
            if stopping:
                return

    def _gather(self, wait: float) -> list[bytes]:
        lines: list[bytes] = []
        deadline = time.monotonic() + wait
        while len(lines) < self.batch_lines:
            left = deadline - time.monotonic()
            try:
                lines.append(self._queue.get(timeout=left) if left > 0 and not lines else self._queue.get_nowait())
            except queue.Empty:
                if lines or left <= 0:
                    break
        return lines

    def _take_flush_requests(self) -> list[threading.Event]:
        found = []
        while True:
            try:
                found.append(self._flush_requests.get_nowait())
            except queue.Empty:
                return found

    def _requeue_flush(self, events: list[threading.Event]) -> None:
        for done in events:
            self._flush_requests.put(done)

    def _retry_due(self, *, force: bool) -> bool:
        if self._database_ok:
            return bool(self._spool_files_exist())
        return force or time.monotonic() >= self._next_retry

    def _ingest(self, lines: list[bytes]) -> IngestResult:
        """Store `lines`; raises when the store (the database) is unavailable."""
        if self._url is None:
            return ingest_lines(self.engine, _Job(self.job_id, self.job_name), enumerate(lines, start=1),
                                source=self.source, via="capture", options=self.options)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        try:
            return self._pool.submit(_ingest_in_child, self._url, self._pooled, self.job_id, self.job_name,
                                     self.options, self.source, lines).result()
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None  # a new process next time; these lines are spooled meanwhile
            raise

    def _store(self, lines: list[bytes]) -> bool:
        try:
            result = self._ingest(lines)
        except Exception as error:  # noqa: BLE001 - the database away (or failing): spool, never lose
            self._database_down(error)
            self._spool(lines)
            return False
        self._count(result)
        if not self._database_ok:
            log.warning("capture %s: the store answers again; draining the spool", self.job_name)
        self._database_ok = True
        return True

    def _count(self, result: IngestResult) -> None:
        with self._lock:
            self.counters.stored += result.accepted
            self.counters.duplicates += result.duplicates
            self.counters.rejected += result.rejected
        for problem in result.problems:
            log.warning("capture %s: line rejected: %s", self.job_name, problem.reason)

    def _database_down(self, error: BaseException) -> None:
        with self._lock:
            self.counters.database_errors += 1
        if self._database_ok:
            log.error("capture %s: the %s is unavailable (%s: %s); spooling to %s until it returns", self.job_name,
                      self.store_name,
                      type(error).__name__, " ".join(str(error).split())[:200], self.spool_dir)
        self._database_ok = False
        self._next_retry = time.monotonic() + self.retry_seconds

    def _drain(self) -> None:
        """Ingest the spool files, oldest first; stop at the first that cannot be stored."""
        for path in sorted(self._spool_files()):
            try:
                lines = [line for line in path.read_bytes().split(b"\n") if line.strip()]
            except FileNotFoundError:
                continue
            if not self._store_spooled(lines):
                return
            size = path.stat().st_size
            path.unlink(missing_ok=True)
            with self._lock:
                if self._spool_used is not None:
                    self._spool_used = max(0, self._spool_used - size)
        self._database_ok = True

    def _store_spooled(self, lines: list[bytes]) -> bool:
        try:
            result = self._ingest(lines)
        except Exception as error:  # noqa: BLE001 - still away: keep the file for the next retry
            self._database_down(error)
            return False
        self._count(result)
        return True

    def _spool(self, lines: list[bytes]) -> None:
        data = b"".join(line + b"\n" for line in lines)
        with self._lock:
            if self._spool_used is None:  # counted once, then kept up to date (not a stat per batch)
                self._spool_used = sum(path.stat().st_size for path in self._spool_files())
            used = self._spool_used
            if used + len(data) > self.spool_max_bytes:
                self.counters.dropped += len(lines)
                log.error("capture %s: the spool %s is full (%d of %d bytes): %d exchange(s) NOT recorded "
                          "(the traffic itself was forwarded); bring the database back or raise --spool-max-mb",
                          self.job_name, self.spool_dir, used, self.spool_max_bytes, len(lines))
                return
            name = f"{time.time_ns():020d}-{os.getpid()}-{next(self._names):06d}"
            partial = self.spool_dir / (name + ".part")
            try:
                with open(partial, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                partial.rename(self.spool_dir / (name + SPOOL_SUFFIX))
            except OSError as error:  # the disk itself (full, gone): said, counted, never a stop
                partial.unlink(missing_ok=True)
                self.counters.dropped += len(lines)
                log.error("capture %s: could not write to the spool %s (%s): %d exchange(s) NOT recorded "
                          "(the traffic itself was forwarded)", self.job_name, self.spool_dir, error, len(lines))
                return
            self.counters.spooled += len(lines)
            self._spool_used = used + len(data)

    def _spool_files(self) -> Iterator[Path]:
        if not self.spool_dir.is_dir():
            return iter(())
        return (path for path in self.spool_dir.glob("*" + SPOOL_SUFFIX) if path.is_file())

    def _spool_files_exist(self) -> bool:
        return next(self._spool_files(), None) is not None


_CHILD_ENGINES: dict[str, Engine] = {}


def _child_engine(url: str, pooled: bool) -> Engine:
    engine = _CHILD_ENGINES.get(url)
    if engine is None:
        engine = _CHILD_ENGINES[url] = (create_engine(url, pool_pre_ping=True) if pooled
                                        else create_engine(url, poolclass=NullPool))
    return engine


def _ingest_in_child(url: str, pooled: bool, job_id: int, job_name: str, options: IngestOptions, source: str,
                     lines: list[bytes]) -> IngestResult:
    """The ingest of one batch in the writer's child process (see `isolated`). Its errors come
    back as a RuntimeError naming them: a database driver's exception may not survive pickling."""
    engine = _child_engine(url, pooled)
    try:
        return ingest_lines(engine, _Job(job_id, job_name), enumerate(lines, start=1), source=source,
                            via="capture", options=options)
    except Exception as error:  # noqa: BLE001 - sent back whole, in words
        raise RuntimeError(f"{type(error).__name__}: {' '.join(str(error).split())[:300]}") from None


class _Job:
    """What the ingest reads of a job (its id and name), without a session to expire it."""

    __slots__ = ("id", "name")

    def __init__(self, job_id: int, name: str) -> None:
        self.id, self.name = job_id, name
