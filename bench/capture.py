"""Benchmark: latency through the recording proxy against direct calls, in the same run.

    .venv/bin/python bench/capture.py [--seconds 20] [--rates 25,250]

The upstream is scim2-server (PyPI) served by werkzeug in a process of its own; the proxy is
`flask --app app capture` as a real process recording into a fresh SQLite database. At each rate
(25 requests/s: Entra's documented rate per tenant; 250: ten times that) the same open-loop load
(a request started every 1/rate seconds, whether or not the one before has finished; Entra's mix
of lookups by filter, creates and PATCHes) goes once directly to the upstream and once through
the proxy. Prints p50 and p99 latency of both and the ratios proxy/direct, then how many
exchanges the proxy stored. Figures only; nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import urllib3

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("BENCH_OUT", ROOT / "bench" / "out"))
FLASK = str(ROOT / ".venv" / "bin" / "flask")
TOKEN = "bench-token"
UPSTREAM = """
import sys
from scim2_models import ScimProvider
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BearerTokenApplication
from scim2_server.utils import load_default_resource_types, load_default_schemas, load_default_service_provider_config
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Response
provider = ScimProvider.from_discovery(load_default_schemas().values(), load_default_resource_types().values(),
                                       config=load_default_service_provider_config())
server = BearerTokenApplication(InMemoryStorage(), provider, service=ScimService(provider, secret="s" * 32),
                                bearer_tokens=[%r])
class Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass
make_server("127.0.0.1", int(sys.argv[1]), DispatcherMiddleware(Response("", 404), {"/scim": server}),
            threaded=True, request_handler=Quiet).serve_forever()
""" % TOKEN


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port: int) -> None:
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def load(base: str, rate: float, seconds: float, tag: str) -> list[float]:
    """Open loop: request i starts at t0 + i/rate; latency from its scheduled start (ms)."""
    http = urllib3.PoolManager(maxsize=64, block=False, retries=False)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"}
    count = int(rate * seconds)
    latencies: list[float] = [0.0] * count
    ids: list[str] = []
    lock = threading.Lock()

    def one(i: int, at: float) -> None:
        delay = at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        kind = i % 4
        name = f"{tag}-{i}@contoso.com"
        if kind == 1:
            answer = http.request("POST", f"{base}/scim/v2/Users", headers=headers, body=orjson.dumps(
                {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "active": True}))
            if answer.status == 201:
                with lock:
                    ids.append(orjson.loads(answer.data)["id"])
        elif kind == 3 and ids:
            with lock:
                user_id = ids[-1]
            http.request("PATCH", f"{base}/scim/v2/Users/{user_id}", headers=headers, body=orjson.dumps(
                {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                 "Operations": [{"op": "replace", "path": "displayName", "value": name}]}))
        else:
            http.request("GET", f"{base}/scim/v2/Users", headers=headers,
                         fields={"filter": f'userName eq "{name}"'})
        latencies[i] = (time.perf_counter() - at) * 1000

    start = time.perf_counter() + 0.2
    with ThreadPoolExecutor(max_workers=64) as pool:
        for i in range(count):
            pool.submit(one, i, start + i / rate)
    http.clear()
    return latencies


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rates", default="25,250")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    db_path = OUT / "capture.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{db_path}", DASHBOARD_SECRET_KEY="bench",
               DASHBOARD_CONFIG=str(ROOT / "tests" / "data" / "empty.toml"), FLASK_APP="app")
    subprocess.run([FLASK, "init-db"], env=env, cwd=ROOT, check=True, capture_output=True)
    subprocess.run([FLASK, "job", "add", "bench"], env=env, cwd=ROOT, check=True, capture_output=True)
    upstream_port, proxy_port = free_port(), free_port()
    upstream = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(upstream_port)], cwd=ROOT)
    proxy = subprocess.Popen([FLASK, "capture", "--listen", f"127.0.0.1:{proxy_port}", "--upstream",
                              f"http://127.0.0.1:{upstream_port}", "--job", "bench", "--spool", str(OUT / "spool")],
                             env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(upstream_port)
        wait_for(proxy_port)
        sent = 0
        print(f"{'rate':>6} {'path':>7} {'n':>6} {'p50 ms':>8} {'p99 ms':>8}")
        for rate in (float(r) for r in args.rates.split(",")):
            direct = load(f"http://127.0.0.1:{upstream_port}", rate, args.seconds, f"d{rate:g}")
            through = load(f"http://127.0.0.1:{proxy_port}", rate, args.seconds, f"p{rate:g}")
            sent += len(through)
            for label, values in (("direct", direct), ("proxy", through)):
                print(f"{rate:>6g} {label:>7} {len(values):>6} {pct(values, 50):>8.2f} {pct(values, 99):>8.2f}")
            print(f"{rate:>6g}  ratio proxy/direct: p50 {pct(through, 50) / pct(direct, 50):.2f}x, "
                  f"p99 {pct(through, 99) / pct(direct, 99):.2f}x")
    finally:
        proxy.terminate()
        output = proxy.communicate(timeout=120)[0]
        upstream.terminate()
        upstream.wait()
    stored = sqlite3.connect(db_path).execute("SELECT count(*) FROM exchange").fetchone()[0]
    print(f"proxy: {output.strip().splitlines()[-1] if output.strip() else '(no output)'}")
    print(f"exchanges stored by the proxy: {stored} of {sent} sent through it")


if __name__ == "__main__":
    main()
