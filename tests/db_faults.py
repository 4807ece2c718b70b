"""A real database failure for tests: a trigger that refuses chosen rows (SQLite and PostgreSQL).

Not a mock: the insert fails inside the database, exactly as a constraint or a bad value would."""
from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from dashboard.db import db


@contextmanager
def refusing_inserts(table: str, condition: str, *, name: str = "test_refuse") -> Iterator[None]:
    """While inside, the database refuses to insert a row of `table` for which `condition` (an SQL
    expression on NEW, valid on both databases) holds: 'refused by the test trigger'."""
    with db.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} WHEN {condition} "
                              "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END"))
        else:
            conn.execute(text(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                              f"IF {condition} THEN RAISE EXCEPTION 'refused by the test trigger'; END IF; "
                              "RETURN NEW; END $$"))
            conn.execute(text(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()"))
    try:
        yield
    finally:
        with db.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
            else:
                conn.execute(text(f"DROP TRIGGER IF EXISTS {name} ON {table}"))
                conn.execute(text(f"DROP FUNCTION IF EXISTS {name}()"))


class CuttableDatabase:
    """The test database behind a switch that makes it really unreachable, for a second engine
    (the capture writer's): PostgreSQL through a TCP relay on 127.0.0.1 whose listener and
    connections are closed by `cut` (connection refused, as when the server is down); SQLite
    through a symlinked directory that `cut` removes ("unable to open database file"). The
    test's own engine (db.engine) is untouched."""

    def __init__(self, url: str, workdir) -> None:  # type: ignore[no-untyped-def]
        self.sqlite = url.startswith("sqlite")
        self._relay: _Relay | None = None
        if self.sqlite:
            real = Path(url.removeprefix("sqlite:///"))
            self._link = Path(workdir) / "db-link"
            self._target = real.parent
            self._link.symlink_to(self._target, target_is_directory=True)
            self.url = "sqlite:///" + str(self._link / real.name)
        else:
            parts = make_url(url)
            self._relay = _Relay(parts.host or "127.0.0.1", parts.port or 5432)
            self.url = parts.set(host="127.0.0.1", port=self._relay.port).render_as_string(hide_password=False)

    def engine(self):  # type: ignore[no-untyped-def]
        # NullPool: every batch connects anew, so that a cut is seen at once, as a dead server would be
        return create_engine(self.url, poolclass=NullPool)

    def cut(self) -> None:
        if self.sqlite:
            self._link.unlink()
        else:
            assert self._relay is not None
            self._relay.stop()

    def restore(self) -> None:
        if self.sqlite:
            self._link.symlink_to(self._target, target_is_directory=True)
        else:
            assert self._relay is not None
            self._relay.start()

    def close(self) -> None:
        if self._relay is not None:
            self._relay.stop()
        elif self._link.is_symlink():
            self._link.unlink()


class _Relay:
    """A TCP relay 127.0.0.1:port -> host:port that can be stopped (listener and live
    connections closed) and started again on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.start()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        with self._lock:
            live, self._sockets = self._sockets, set()
        for sock in live:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65_536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self._lock:
                self._sockets.discard(source)
            source.close()  # each socket is the source of one pipe: closed once, by it
