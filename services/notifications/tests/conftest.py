"""Fixtures: a fresh migrated notifications database per test, a stand-in for identity's org
chart, real HTTP and SMTP servers on loopback that record what they receive."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import threading
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.notifications.v1 import events_pb2
from crm_notifications.domain.model import Person
from crm_notifications.main import migrate
from crmkit.auth import DataScope, Principal
from crmkit.db import create_engine, session_factory
from crmkit.events.envelope import Event, build_headers, subject_of
from crmkit.ids import new_id
from crmkit.testing.service import OutboxRow, outbox_reader, sql_runner, use_case_runner


@pytest.fixture
async def sessions(database_factory) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_factory("notifications", migrate), pool_size=5)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def call(sessions) -> Callable[..., Awaitable[Any]]:
    return use_case_runner(sessions, "crm/notifications")


@pytest.fixture
def outbox(sessions) -> Callable[[], Awaitable[list[OutboxRow]]]:
    return outbox_reader(sessions, events_pb2)


@pytest.fixture
def sql(sessions) -> Callable[..., Awaitable[list[Any]]]:
    return sql_runner(sessions)


# ---------------------------------------------------------------------------- org chart


# What a test person may read unless a test says otherwise: everything (as an admin).
READS_ALL = Principal(subject="", permissions=("*",), data_scope=DataScope.ALL, sees_sensitive=True)


class FakeDirectory:
    """Stands in for identity's GetUser / GetManagerChain / ListRoleHolders / ListRoles
    (tests/test_directory.py runs the real one against identity)."""

    def __init__(self) -> None:
        self.people: dict[str, Person] = {}
        self.manager: dict[str, str] = {}
        self.roles: dict[str, list[str]] = {}
        self.role_grants: dict[str, Principal] = {}
        self.calls = 0

    def add(self, user_id: str, *, locale: str = "zh-CN", email: str | None = None, manager: str = "",
            roles: tuple[str, ...] = (), access: Principal = READS_ALL) -> Person:
        address = email if email is not None else f"{user_id}@lingbo.test"
        person = Person(user_id, user_id.replace("-", " ").title(), address, locale,
                        replace(access, subject=user_id))
        self.people[user_id] = person
        if manager:
            self.manager[user_id] = manager
        for role in roles:
            self.roles.setdefault(role, []).append(user_id)
        return person

    async def person(self, user_id: str) -> Person | None:
        self.calls += 1
        return self.people.get(user_id)

    async def managers(self, user_id: str) -> list[Person]:
        self.calls += 1
        boss = self.manager.get(user_id)
        return [self.people[boss]] if boss else []

    async def role_holders(self, role: str) -> list[Person]:
        self.calls += 1
        return [self.people[u] for u in self.roles.get(role, [])]

    async def role_access(self, role: str) -> Principal | None:
        return self.role_grants.get(role)


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory()


def make_event(message: Message, *, event_id: str | None = None, source: str = "crm/contracts",
               time: dt.datetime | None = None) -> Event:
    event_id = event_id or str(new_id())
    headers = build_headers(event_id=event_id, event_type=message.DESCRIPTOR.full_name, source=source, actor="u-1",
                            subject_id="", time=time or dt.datetime.now(dt.UTC))
    return Event(id=event_id, subject=subject_of(message), type=message.DESCRIPTOR.full_name,
                 payload=message.SerializeToString(), headers=headers)


@pytest.fixture
def event() -> Callable[..., Event]:
    return make_event


# ------------------------------------------------------------------------- loopback servers


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpEndpoint:
    """A real HTTP server on loopback that records requests and answers `status` with `reply`."""

    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 200
    reply: dict[str, Any] = field(default_factory=dict)
    check: Callable[[Received], int] | None = None


@pytest.fixture
def http_endpoint() -> Iterator[Callable[..., HttpEndpoint]]:
    servers: list[ThreadingHTTPServer] = []

    def start(status: int = 200, reply: dict[str, Any] | None = None,
              check: Callable[[Received], int] | None = None) -> HttpEndpoint:
        endpoint = HttpEndpoint(url="", status=status, reply=reply or {}, check=check)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                parts = urllib.parse.urlsplit(self.path)
                got = Received("POST", parts.path, dict(urllib.parse.parse_qsl(parts.query)),
                               {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                endpoint.received.append(got)
                status = endpoint.check(got) if endpoint.check else endpoint.status
                body = json.dumps(endpoint.reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        return endpoint

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    mailbox: _Mailbox

    @property
    def messages(self) -> list[Any]:
        return self.mailbox.messages


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    mailbox = _Mailbox()
    with socket.socket() as probe:  # the controller checks its port by connecting: no port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, mailbox)
    finally:
        controller.stop()


@pytest.fixture
def loop_time() -> Callable[[], float]:
    return lambda: asyncio.get_running_loop().time()
