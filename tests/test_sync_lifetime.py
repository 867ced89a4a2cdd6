"""Client's thread across the life of a process: close, ``with``, garbage
collection, interpreter exit and ``os.fork()``.

Each case runs in a fresh interpreter with a timeout, since the failures these
tests guard against are a process that never exits and a thread that outlives
its client. ``-X dev -W error`` turns any unclosed-resource warning into output
on stderr, which must stay empty.
"""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest

from .helpers import assert_clean, run_python

PRELUDE = """
import atexit, gc, logging, os, sys, threading

# -X dev turns on asyncio's debug mode, whose notes on slow callbacks ("Executing <Task>
# took 0.115 seconds") depend on the machine's load, not on the SDK: only those are kept
# off stderr (a loaded CI machine printed one).
logging.getLogger("asyncio").addFilter(lambda r: not r.getMessage().startswith("Executing "))

def portal_threads():
    return [t for t in threading.enumerate() if t.name.startswith("activatepro-portal")]

def no_thread_left_at_exit():
    # Registered before any client exists, so it runs after their finalizers.
    left = portal_threads()
    if left:
        print("threads left at exit:", left, file=sys.stderr)
        os._exit(3)

atexit.register(no_thread_left_at_exit)

from activatepro_async import Client, User
from activatepro_async.emulator import Emulator

emulator = Emulator(api_keys=("test-key",))
BACKEND = {backend!r}

def used_client():
    client = Client("test-key", transport=emulator.transport(), backend=BACKEND)
    client.upsert_user(User("ada", "ada@example.com"))
    assert len(portal_threads()) == 1
    return client
"""


def run_script(body: str, backend: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return run_python(PRELUDE.format(backend=backend) + textwrap.dedent(body), flags=flags)


CASES = {
    "close": """
        client = used_client()
        client.close()
        assert portal_threads() == [], portal_threads()
        print("done")
    """,
    "context-manager": """
        with used_client() as client:
            client.get_user("ada")
        assert portal_threads() == [], portal_threads()
        print("done")
    """,
    "garbage-collection": """
        client = used_client()
        del client
        gc.collect()
        assert portal_threads() == [], portal_threads()
        print("done")
    """,
    "exit-while-open": """
        client = used_client()
        print("done")  # the interpreter exits with the client and its thread still open
    """,
    "exit-while-open-and-unreferenced-cycle": """
        class Holder:
            pass
        holder = Holder()
        holder.me, holder.client = holder, used_client()
        del holder  # only the cyclic collector (or exit) can reach the client now
        print("done")
    """,
}


@pytest.mark.parametrize("case", CASES)
def test_the_thread_ends_and_the_process_exits_cleanly(case: str, backend: str) -> None:
    assert_clean(run_script(CASES[case], backend, "-X", "dev", "-W", "error"))


def test_exit_while_a_call_is_still_running_does_not_hang(backend: str) -> None:
    # A daemon thread is blocked in a call when the main thread ends.
    body = """
        import anyio, httpx
        stuck = threading.Event()

        class Hangs(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request):
                stuck.set()
                await anyio.sleep_forever()

        client = Client("test-key", transport=Hangs(), backend=BACKEND)
        worker = threading.Thread(target=client.get_user, args=("ada",), daemon=True)
        worker.start()
        stuck.wait()
        print("done")
    """
    result = run_script(body, backend)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"


FORK = """
import http.server, json

peers = []

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps connections open between requests

    def do_GET(self):
        peers.append(self.client_address)
        body = json.dumps({"id": "ada", "email": "ada@example.com"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
base_url = f"http://127.0.0.1:{server.server_address[1]}"
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_forked_child_gets_a_fresh_portal_and_connections_and_the_parent_still_works(
    backend: str,
) -> None:
    body = """
        client = Client("test-key", base_url=base_url, backend=BACKEND)
        client.get_user("ada")  # the parent's loop, and a connection kept alive in its pool

        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                assert portal_threads() == []  # the parent's thread is not in the child
                assert client.get_user("ada").id == "ada"
                assert len(portal_threads()) == 1
            except BaseException as exc:
                print("child failed:", repr(exc), file=sys.stderr)
                code = 1
            sys.exit(code)  # a normal exit: the child's finalizer closes the child's loop

        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child failed"
        assert client.get_user("ada").id == "ada"
        parent, child, parent_again = peers
        assert child != parent, "the child used the parent's connection"
        assert parent_again == parent, "the parent lost its connection"
        client.close()
        print("done")
    """
    result = run_script(FORK + textwrap.dedent(body), backend)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_forked_child_refuses_your_own_http_client_the_parent_used() -> None:
    body = """
        import httpx
        from activatepro_async import ConfigurationError

        client = Client("test-key", base_url=base_url, http_client=httpx.AsyncClient())
        client.get_user("ada")

        pid = os.fork()
        if pid == 0:
            try:
                client.get_user("ada")
            except ConfigurationError as exc:
                assert "create the Client in the child" in str(exc), exc
                os._exit(0)
            os._exit(1)

        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child did not refuse"
        assert client.get_user("ada").id == "ada"
        print("done")
    """
    result = run_script(FORK + textwrap.dedent(body), "asyncio")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
