# ruff: noqa: ASYNC220
"""A stand-in for a service and for the gateway, for the launcher's tests only.

    standin.py migrate   records its env, creates/updates a table in CRM_DATABASE_URL
    standin.py serve     records env and pid, starts a grandchild, then (after STANDIN_DELAY
                         seconds, to prove the launcher waits) serves gRPC health on CRM_GRPC_PORT
    standin.py gateway   serves GET /readyz and a tiny /api/v1/customers on CRM_HTTP_PORT
    standin.py crash     exits with status 3
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

OUT = Path(os.environ.get("STANDIN_DIR", "."))
NAME = os.environ.get("CRM_SERVICE_NAME", "standin")


def record(kind: str, **extra: object) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    doc = {"pid": os.getpid(), "env": {k: v for k, v in os.environ.items() if k.startswith("CRM_")},
           **extra}
    tmp = OUT / f".{NAME}.{kind}.json.tmp"
    tmp.write_text(json.dumps(doc))
    tmp.replace(OUT / f"{NAME}.{kind}.json")


def migrate() -> None:
    import asyncpg

    async def run() -> None:
        url = os.environ["CRM_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS migrations_run (at timestamptz default now())")
            await conn.execute("INSERT INTO migrations_run DEFAULT VALUES")
        finally:
            await conn.close()

    asyncio.run(run())
    record("migrate")


async def serve() -> None:
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    delay = float(os.environ.get("STANDIN_DELAY", "0"))
    record("serve", grandchild_pid=grandchild.pid, serving_at=time.time() + delay)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await asyncio.sleep(delay)
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{os.environ['CRM_GRPC_PORT']}")
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    print(f"{NAME} serving on {os.environ['CRM_GRPC_PORT']}", flush=True)
    await stop.wait()
    print(f"{NAME} stopping", flush=True)
    await server.stop(1)


def gateway() -> None:
    customers: list[dict] = []
    posts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _json(self, code: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/readyz":
                self._json(200, {"status": "ok"})
            elif self.path.startswith("/api/v1/customers"):
                self._json(200, {"items": customers[:1]})
            else:
                self._json(404, {})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            auth_ok = self.headers.get("Authorization", "").startswith("Bearer ")
            posts.append(self.path)
            if self.path == "/api/v1/customers":
                body["id"] = f"c{len(customers)}"
                customers.append(body)
            record("gateway-posts", posts=posts, auth_ok=auth_ok)
            self._json(201, body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["CRM_HTTP_PORT"])), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    record("serve")
    print("gateway listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "migrate":
        migrate()
    elif mode == "serve":
        asyncio.run(serve())
    elif mode == "gateway":
        NAME = "gateway"
        gateway()
    elif mode == "crash":
        print("stand-in crashing on purpose", flush=True)
        sys.exit(3)
