"""Looking at processes from a test (Linux /proc): what a pid runs, whether it still lives, and
waiting, with a deadline, for one to die."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def comm(pid: int) -> str:
    """The program a pid runs now ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def running(pid: int) -> bool:
    try:  # a zombie nobody has reaped yet has died
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def died_within(pid: int, seconds: float) -> bool:
    """Whether `pid` dies within `seconds`; one that does not is killed, so no test leaves it behind."""
    deadline = time.monotonic() + seconds
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if running(pid):
        os.kill(pid, signal.SIGKILL)
        return False
    return True
