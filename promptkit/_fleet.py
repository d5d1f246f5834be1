"""A local fleet of real vLLM OpenAI servers on loopback, for tests, examples and benchmarks.

Each server is configured the way promptkit's routing needs (docs/scale-out.md says why):
prefix caching on, cached tokens reported per request, KV-cache events published over ZeroMQ
TCP, the block size matched to promptkit's, and a small KV cache so that two servers fit on a
laptop. Servers run in their own process group, so stopping one stops its engine workers too;
the fleet stops every server on :meth:`LocalFleet.stop`, on leaving its ``with`` block (an
exception included) and, as a last resort, at interpreter exit.

::

    with LocalFleet(replicas=2) as fleet:
        engine = fleet.routed(policy="precise")
        ...
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from engine_adapter.errors import EngineStartError
from promptkit._model_store import resolve_model_dir

if TYPE_CHECKING:
    from engine_adapter.openai import OpenAIEngine
    from engine_adapter.routed import Policy, RoutedEngine

__all__ = ["FleetServer", "LocalFleet"]

_STOP_GRACE_S = 20.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(slots=True)
class FleetServer:
    """One server of the fleet: where to reach it, and the process that runs it."""

    name: str
    url: str
    kv_events_endpoint: str
    log_path: Path
    command: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class LocalFleet:
    """``replicas`` vLLM OpenAI servers of one model, on free loopback ports.

    Args:
        replicas: how many servers (each takes ~2-3 GB of RAM and shares the CPU cores).
        model: a model directory; ``None`` takes promptkit's default (see ``promptkit model``).
        block_size: the KV block size of every server; promptkit must account with the same.
        kv_cache_gib: ``VLLM_CPU_KVCACHE_SPACE`` per server (whole GiB, vLLM's CPU backend).
        num_blocks: if set, caps each server's KV cache at this many blocks
            (``--num-gpu-blocks-override``), for workloads that must feel cache pressure.
        max_model_len: the longest prompt plus output a server accepts.
        log_dir: where each server writes ``<name>.log``; a temporary directory by default.
        start_timeout_s: how long to wait for every server to answer ``/health``.
        dev_mode: ``VLLM_SERVER_DEV_MODE=1``, which enables ``/reset_prefix_cache``.
    """

    def __init__(
        self,
        *,
        replicas: int = 2,
        model: str | os.PathLike[str] | None = None,
        block_size: int = 32,
        kv_cache_gib: int = 1,
        num_blocks: int | None = None,
        max_model_len: int = 4096,
        log_dir: str | os.PathLike[str] | None = None,
        start_timeout_s: float = 600.0,
        dev_mode: bool = True,
    ) -> None:
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {replicas}")
        self.model_dir = resolve_model_dir(model)
        self.block_size = block_size
        self.start_timeout_s = start_timeout_s
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if self._log_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="promptkit-fleet-")
            self._log_dir = Path(self._tmp.name)
        self._log_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib),
            "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        }
        if dev_mode:
            env["VLLM_SERVER_DEV_MODE"] = "1"
        self.servers: dict[str, FleetServer] = {}
        for index in range(replicas):
            name = f"replica-{index}"
            port, events_port = _free_port(), _free_port()
            events = {
                "enable_kv_cache_events": True,
                "publisher": "zmq",
                # vLLM binds only a wildcard endpoint; any other tcp:// one it connects to.
                "endpoint": f"tcp://*:{events_port}",
                "topic": "kv",
            }
            # `python -m`: the `vllm` console script is broken under vllm-cpu.
            command = [
                sys.executable, "-m", "vllm.entrypoints.openai.api_server",
                "--model", str(self.model_dir), "--host", "127.0.0.1", "--port", str(port),
                "--enable-prefix-caching", "--enable-prompt-tokens-details",
                "--block-size", str(block_size), "--enforce-eager",
                "--max-model-len", str(max_model_len),
                "--kv-events-config", json.dumps(events),
            ]  # fmt: skip
            if num_blocks is not None:
                command += ["--num-gpu-blocks-override", str(num_blocks)]
            self.servers[name] = FleetServer(
                name=name,
                url=f"http://127.0.0.1:{port}",
                kv_events_endpoint=f"tcp://127.0.0.1:{events_port}",
                log_path=self._log_dir / f"{name}.log",
                command=command,
                env=env,
            )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        """Start every server that is not running, and wait until all answer ``/health``.

        On failure every server is stopped and :class:`EngineStartError` carries the end of
        the failing server's log.
        """
        atexit.register(self.stop)
        try:
            for server in self.servers.values():
                if not server.running:
                    self._spawn(server)
            for server in self.servers.values():
                self._wait_healthy(server)
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self, name: str) -> None:
        """Stop the server ``name`` if it runs, start it again and wait for its health."""
        server = self.servers[name]
        _stop(server)
        self._spawn(server)
        try:
            self._wait_healthy(server)
        except BaseException:
            _stop(server)
            raise

    def kill(self, name: str) -> None:
        """Kill the server ``name`` at once (SIGKILL to its process group), as a crash would."""
        server = self.servers[name]
        if server.process is not None:
            _signal_group(server.process, signal.SIGKILL)
            server.process.wait()

    def stop(self) -> None:
        """Stop every server (SIGTERM, then SIGKILL) with its workers. Safe to call twice."""
        for server in self.servers.values():
            _stop(server)
        atexit.unregister(self.stop)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    # -- engines --------------------------------------------------------------------------

    def engine(self, name: str, *, timeout: float = 120.0) -> OpenAIEngine:
        """An :class:`OpenAIEngine` on server ``name``, which follows its KV-cache events."""
        from engine_adapter.openai import OpenAIEngine

        server = self.servers[name]
        return OpenAIEngine.from_url(
            f"{server.url}/v1",
            model=str(self.model_dir),
            block_size=self.block_size,
            kv_events_endpoint=server.kv_events_endpoint,
            timeout=timeout,
            max_retries=0,
        )

    def routed(self, *, policy: Policy = "precise", timeout: float = 120.0) -> RoutedEngine:
        """A :class:`RoutedEngine` over one :class:`OpenAIEngine` per server."""
        from engine_adapter.routed import RoutedEngine

        engines = {name: self.engine(name, timeout=timeout) for name in self.servers}
        return RoutedEngine(engines, policy=policy, owns_replicas=True)

    # -- processes ------------------------------------------------------------------------

    def _spawn(self, server: FleetServer) -> None:
        with server.log_path.open("ab") as log:
            # A new session: its process group holds the server and its engine workers.
            server.process = subprocess.Popen(
                server.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=server.env,
                start_new_session=True,
            )

    def _wait_healthy(self, server: FleetServer) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            process = server.process
            if process is None or process.poll() is not None:
                code = None if process is None else process.returncode
                raise EngineStartError(
                    f"vLLM server {server.name} exited with {code} while starting; "
                    f"its log ({server.log_path}) ends:\n{_log_tail(server.log_path)}"
                )
            if _healthy(server.url, timeout=2.0):
                return
            time.sleep(1.0)
        raise EngineStartError(
            f"vLLM server {server.name} not healthy after {self.start_timeout_s:.0f} s "
            f"(raise start_timeout_s on a loaded machine); its log ends:\n"
            f"{_log_tail(server.log_path)}"
        )


def _healthy(url: str, *, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> bool:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return False
    return True


def _stop(server: FleetServer) -> None:
    process, server.process = server.process, None
    if process is None:
        return
    for sig, grace in ((signal.SIGTERM, _STOP_GRACE_S), (signal.SIGKILL, 10.0)):
        if not _signal_group(process, sig):
            break
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            continue
        # The server exited; its workers may linger a moment: the group gets the same signal.
        _signal_group(process, signal.SIGKILL)
        break
    if process.poll() is None:
        process.wait()
