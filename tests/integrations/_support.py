"""What the Spark tests share: the skip when Spark cannot run, and a served emulator."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time

import httpx
import pytest

API_KEY = "spark-test-key-5f0c9a1e77"


def require_spark() -> None:
    """Skip the calling test module when pyspark or java is missing (CI has both)."""
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs java (17+)", allow_module_level=True)


class ServedEmulator:
    """``activatepro serve`` in a subprocess: free port, readiness poll, terminated at the end."""

    def __init__(self, *args: str, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        command = [sys.executable, "-m", "activatepro_async", "serve", "--port", "0"]
        command += ["--api-key", api_key, "--log-level", "error", *args]
        # Port 0: the server binds a free port itself and prints its URL, so no
        # other process can take the port between choosing and binding it.
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        try:
            self.base_url = self._read_url(timeout=30)
            self._wait_ready(timeout=30)
        except BaseException:
            self.stop()
            raise

    def _read_url(self, timeout: float) -> str:
        found: list[str] = []
        assert self.process.stdout is not None
        stdout = self.process.stdout

        def read() -> None:
            for line in stdout:
                self.output.append(line)
                match = re.search(r"listening on (http://\S+)", line)
                if match and not found:
                    found.append(match.group(1))

        # Reads to the end, so the server never blocks on a full pipe.
        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"activatepro serve did not start: {''.join(self.output)}")
            time.sleep(0.02)
        return found[0]

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                # Any HTTP answer means the server accepts and serves requests.
                httpx.get(f"{self.base_url}/users/track/ready", timeout=2)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (SIGTERM, so a ``--dump-on-exit`` file gets written)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
