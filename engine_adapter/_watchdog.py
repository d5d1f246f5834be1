"""Engine processes never outlive the process that started them, even on ``SIGKILL``.

vLLM runs its engine core in child processes (``VLLM::EngineCore``, ~3 GB each). If the client
process is killed, nothing runs its shutdown and the children keep their memory forever. A parent
death signal cannot be set from outside those children, so a tiny watchdog process holds the
read end of a pipe whose write end only the client holds: when the client dies, however it
dies, the kernel closes the pipe, the watchdog reads EOF and kills the engine processes it was
given (and their descendants). A clean :meth:`Watchdog.release` tells it to exit quietly.

Run as ``python -m engine_adapter._watchdog PID...`` (by :class:`Watchdog` only).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterable

__all__ = ["Watchdog", "new_children"]

_RELEASE = b"release\n"


def new_children(before: Iterable[int]) -> list[int]:
    """Child processes of this process (recursively) that are not in ``before``."""
    import psutil  # type: ignore[import-untyped,unused-ignore]

    known = set(before)
    return [c.pid for c in psutil.Process().children(recursive=True) if c.pid not in known]


def current_children() -> list[int]:
    import psutil  # type: ignore[import-untyped,unused-ignore]

    return [c.pid for c in psutil.Process().children(recursive=True)]


class Watchdog:
    """Kills ``pids`` (and their descendants) when this process dies without releasing them."""

    def __init__(self, pids: Iterable[int]) -> None:
        self.pids = [int(p) for p in pids]
        self._process: subprocess.Popen[bytes] | None = None
        if self.pids:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "engine_adapter._watchdog", *map(str, self.pids)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C to the client's group must not kill it first
            )

    def release(self) -> None:
        """The engine shut down cleanly: let the watchdog exit without killing anything."""
        process, self._process = self._process, None
        if process is None or process.stdin is None:
            return
        try:
            process.stdin.write(_RELEASE)
            process.stdin.close()
        except OSError:  # the watchdog is gone already
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _kill(pids: list[int]) -> None:
    import psutil  # type: ignore[import-untyped,unused-ignore]

    victims: list[psutil.Process] = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            victims += [*process.children(recursive=True), process]
        except psutil.NoSuchProcess:
            continue
    for process in victims:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            continue


def main(argv: list[str]) -> int:
    pids = [int(a) for a in argv]
    data = sys.stdin.buffer.read()  # blocks until the client releases us or dies
    if data != _RELEASE:
        _kill(pids)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise SystemExit(main(sys.argv[1:]))
