"""Child processes with their output prefixed by name, stopped as a whole process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO

from crmkit.embedded import spawn

_COLOURS = ["36", "33", "35", "32", "34", "91", "96", "93", "95", "92"]


class Output:
    """Writes whole lines from many threads, each prefixed `name | `."""

    def __init__(self, stream: IO[str] | None = None, width: int = 14) -> None:
        self.stream = stream or sys.stdout
        self.width = width
        self._lock = threading.Lock()
        self._colour: dict[str, str] = {}
        try:
            self._tty = self.stream.isatty() and not os.environ.get("NO_COLOR")
        except (AttributeError, ValueError):
            self._tty = False

    def line(self, name: str, text: str) -> None:
        label = name.ljust(self.width)
        if self._tty:
            colour = self._colour.setdefault(name, _COLOURS[len(self._colour) % len(_COLOURS)])
            label = f"\x1b[{colour}m{label}\x1b[0m"
        with self._lock:
            try:
                self.stream.write(f"{label} | {text}\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass  # nobody reads our output any more; keep the children running

    def say(self, text: str) -> None:
        for line in text.splitlines() or [""]:
            self.line("crm-dev", line)


class Child:
    """One supervised process: its own session (so it is stopped as a group, children
    included, and a terminal's Ctrl-C reaches only the launcher), a parent-death signal, and
    stdout+stderr copied line by line to `output`."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], output: Output,
                 cwd: str | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.output = output
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None
        self.stopping = False

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self) -> Child:
        # spawn(), not Popen(preexec_fn=...): no fork() in a process that may run gRPC
        self.proc = spawn(self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._pump = threading.Thread(target=self._copy, name=f"out-{self.name}", daemon=True)
        self._pump.start()
        return self

    def _copy(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            self.output.line(self.name, raw.decode("utf-8", "replace").rstrip("\r\n"))
        self.proc.stdout.close()

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def exited(self) -> str | None:
        code = self.poll()
        return None if code is None else f"{self.name} exited with status {code}"

    def signal(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.stopping = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float) -> int | None:
        """Waits for the process; SIGKILLs its group after `timeout` seconds."""
        if self.proc is None:
            return None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.output.say(f"{self.name} did not stop in {timeout:.0f}s: killing it")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait()
        # the group may hold grandchildren that outlived their parent
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self._pump is not None:
            self._pump.join(5)
        return code

    def stop(self, timeout: float = 15.0) -> int | None:
        self.signal(signal.SIGTERM)
        return self.wait(timeout)


def run_to_end(name: str, argv: Sequence[str], env: dict[str, str], output: Output,
               cwd: str | None = None, timeout: float = 300.0) -> int:
    """Runs a one-shot command (a migration) with prefixed output; returns its status."""
    child = Child(name, argv, env, output, cwd).start()
    try:
        code = child.wait(timeout)
    except BaseException:
        child.stop(5)
        raise
    return -1 if code is None else code
