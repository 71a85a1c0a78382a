"""How the launcher starts processes (crmkit.embedded.spawn, used by Child and the servers).

The launcher runs inside processes that use gRPC: the e2e tests and a full pytest run, where the
services' tests have used grpc.aio before. A real fork() there runs gRPC's pthread_atfork
handlers, which restart gRPC's threads in the child between fork and exec; those die on the fds
that Popen then closes (SIGABRT after "epoll_wait error: Bad file descriptor", or SIGSEGV).
Popen forks for real whenever it is given preexec_fn or user/group, so spawn() passes neither.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from crmkit.embedded import spawn
from crmkit.testing.processes import comm, died_within

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

_GRPC_BUSY_SPAWNER = textwrap.dedent("""
    import asyncio, os, subprocess, sys
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from crm_devstack.supervisor import Child, Output

    ROUNDS, USER = int(sys.argv[1]), sys.argv[2] or None

    async def main():
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        # keep gRPC's event engine busy while we spawn, as a test session's servers do
        client = subprocess.Popen([sys.executable, "-c", f'''
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel("127.0.0.1:{port}"))
    while True:
        try: stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
        except Exception: pass
    '''])
        failures = []
        try:
            output = Output(open(os.devnull, "w"))
            for _ in range(ROUNDS):
                child = Child("true", ["true"], dict(os.environ), output).start()
                if (code := await asyncio.to_thread(child.wait, 30)) != 0:
                    failures.append(code)
                if USER:
                    from crmkit.embedded import spawn
                    proc = spawn(["true"], user=USER)
                    if (code := await asyncio.to_thread(proc.wait, 30)) != 0:
                        failures.append(code)
        finally:
            client.kill()
            client.wait()
            await server.stop(None)
        print("failures", failures, flush=True)
        sys.exit(1 if failures else 0)

    asyncio.run(main())
""")


def test_children_start_from_a_process_busy_with_grpc_aio() -> None:
    # with Popen(preexec_fn=...) about one child in ten died here before exec
    user = "nobody" if os.geteuid() == 0 and _user_exists("nobody") else ""
    result = subprocess.run([sys.executable, "-c", _GRPC_BUSY_SPAWNER, "60", user],
                            capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_spawn_refuses_options_that_make_popen_fork() -> None:
    for option in ({"preexec_fn": lambda: None}, {"group": 0},
                   {"extra_groups": []}):
        with pytest.raises(TypeError, match="fork"):
            spawn(["true"], **option)  # type: ignore[arg-type]


def test_spawn_reports_a_missing_program_like_popen() -> None:
    with pytest.raises(FileNotFoundError):
        spawn(["crm-no-such-program"])


@pytest.mark.skipif(os.geteuid() != 0 or not _user_exists("nobody"), reason="needs root")
def test_spawn_runs_as_another_user() -> None:
    proc = spawn(["id", "-u"], user="nobody", stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert int(out) == pwd.getpwnam("nobody").pw_uid


def test_children_die_with_a_killed_launcher(tmp_path: Path) -> None:
    # the parent-death signal, now set after an exec instead of in preexec_fn, still works
    launcher = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from crmkit.embedded import spawn\n"
         "print(spawn(['sleep', '300']).pid, flush=True)\n"
         "time.sleep(300)\n"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert launcher.stdout is not None
        child = int(launcher.stdout.readline())
        deadline = time.monotonic() + 10
        while comm(child) != "sleep" and time.monotonic() < deadline:
            time.sleep(0.02)  # until the helper has exec'd the real program
        assert comm(child) == "sleep"
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
    assert died_within(child, 10)

