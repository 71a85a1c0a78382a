"""A child started by `crmkit.embedded.spawn` from a thread that then ends lives on, and still dies
with its launcher: the parent-death signal is tied to a thread that lives as long as the process."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from crmkit.testing.processes import comm, died_within

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

_LAUNCHER = textwrap.dedent("""
    import threading, time
    from crmkit.embedded import spawn

    started = []
    worker = threading.Thread(target=lambda: started.append(spawn(["sleep", "300"]).pid))
    worker.start()
    worker.join()  # the thread that asked for the child is gone
    print(started[0], flush=True)
    time.sleep(300)
""")


def test_a_child_of_a_finished_thread_lives_until_its_launcher_is_killed() -> None:
    launcher = subprocess.Popen([sys.executable, "-c", _LAUNCHER], stdout=subprocess.PIPE, text=True)
    child = 0
    try:
        assert launcher.stdout is not None
        child = int(launcher.stdout.readline())
        deadline = time.monotonic() + 10
        while comm(child) != "sleep" and time.monotonic() < deadline:
            time.sleep(0.02)  # until the exec helper has become the program
        assert comm(child) == "sleep"  # alive, though the thread that asked for it has ended
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
    assert died_within(child, 10)

