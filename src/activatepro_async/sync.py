"""``Client``: the blocking facade over :class:`AsyncClient`, for code that is not async.

There is one implementation of the API, :class:`AsyncClient`. ``Client`` runs it
on an event loop of its own, in one thread per client (an anyio blocking portal,
started on first use), and hands each call across with ``portal.call``:

* every sync method is a twin of a public coroutine method of ``AsyncClient``,
  made by :func:`_twin` from one line in the class body. The twin has the same
  name, parameters, result and docstring; mypy and IDEs read its real types
  through a ``ParamSpec``. ``tests/test_sync_parity.py`` fails when a public
  coroutine method of ``AsyncClient`` has no twin with the same signature.
* the ``AsyncClient`` (and its ``httpx.AsyncClient``) is created on the portal's
  loop and used there only, so no connection ever meets a second event loop.
* a :class:`_Runner` owns the thread and the ``AsyncClient``. It holds no
  reference to the ``Client``, so a ``weakref.finalize`` can close it when the
  ``Client`` is garbage-collected or the interpreter exits (an open portal at
  exit would otherwise hang the process).
* after ``os.fork()`` the child drops the parent's loop without touching it (its
  thread does not exist in the child) and starts a fresh one with fresh
  connections on first use.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import os
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import CancelledError
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import httpx

from ._options import NOT_GIVEN, NotGiven, check_headers, check_timeout, merge_headers
from ._otel import in_callers_context
from ._retry import RetryPolicy
from .client import AsyncClient, _check_api_key, _check_base_url, _Secret
from .errors import ConfigurationError

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal
    from opentelemetry.trace import TracerProvider

__all__ = ["BACKENDS", "Client"]

#: The event loops a :class:`Client` can run its portal on.
BACKENDS = ("asyncio", "trio")

_P = ParamSpec("_P")
_R = TypeVar("_R")

# Loops left behind by a fork: their threads do not exist in the child, and
# finalizing them (the portal's context manager) would wait for those threads
# forever. Keeping them referenced keeps them from being finalized.
_ABANDONED: list[_Loop] = []


class _Loop:
    """The running portal of one process: its thread, loop and AsyncClient."""

    __slots__ = ("client", "cm", "pid", "portal", "thread_id")

    def __init__(
        self,
        cm: AbstractContextManager[BlockingPortal],
        portal: BlockingPortal,
        client: AsyncClient,
        thread_id: int,
    ) -> None:
        self.pid = os.getpid()
        self.cm = cm
        self.portal = portal
        self.client = client
        self.thread_id = thread_id


def _inside_trio_run() -> bool:
    """Whether this thread runs ``trio.run`` (trio then refuses blocking portal calls)."""
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


def _in_helper_thread(func: Callable[[], _R]) -> _R:
    """Run ``func`` in a short-lived thread and wait for it, passing on its outcome."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, func()))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=target, name="activatepro-portal-call", daemon=True)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    result: _R = value
    return result


class _Runner:
    """Owns the portal thread and the AsyncClient of one :class:`Client`.

    It never references the ``Client``: a ``weakref.finalize`` on the ``Client``
    calls :meth:`close` when the ``Client`` is collected or the interpreter exits.
    """

    def __init__(self, backend: str, settings: dict[str, Any], secret: _Secret) -> None:
        self.backend = backend
        self._settings = settings
        self._secret = secret
        self._lock = threading.Lock()
        self._loop: _Loop | None = None
        self._closed = False
        # True once a loop of this runner has used the caller's own http_client
        # or network transport: after a fork its connections belong to the parent.
        self._shares_connections = False
        _RUNNERS.add(self)

    def _refused(self) -> bool:
        """Whether this thread may not call the portal itself (trio inside trio.run)."""
        return self.backend == "trio" and _inside_trio_run()

    # -- one call ----------------------------------------------------------

    def call(
        self,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: dict[str, Any] | None = None,
    ) -> Any:
        """Run ``AsyncClient.<name>(*args, **kwargs)`` on the portal; block for the result.

        ``options`` are those of a :meth:`Client.with_options` copy: the call goes
        to ``with_options(**options)`` of the loop's client, on its connections.
        """
        loop = self._loop
        if loop is None or loop.pid != os.getpid():
            loop = self._start()
        if threading.get_ident() == loop.thread_id:
            raise RuntimeError(
                f"Client.{name}() was called on the Client's own event loop thread, from a "
                "callback it runs (on_progress, a generator given to upsert_many): collect "
                "what you need first, or use AsyncClient in async code"
            )
        # A copy is made per call (a few microseconds next to the portal's hop): it
        # then always belongs to the loop of now, also after a fork.
        target = loop.client if not options else loop.client.with_options(**options)
        # The caller's current span (in its thread) is the parent of the call's spans.
        method = in_callers_context(functools.partial(getattr(target, name), *args, **kwargs))
        if self._refused():
            return _in_helper_thread(lambda: loop.portal.call(method))
        try:
            future = loop.portal.start_task_soon(method)
        except RuntimeError:
            if not self._closed:
                raise
            raise self._closed_while(name) from None
        try:
            return future.result()
        except CancelledError:
            if not self._closed:
                raise
            raise self._closed_while(name) from None
        except BaseException:
            # Ctrl-C (or any error of the waiting thread) cancels the request too.
            future.cancel()
            raise

    @staticmethod
    def _closed_while(name: str) -> RuntimeError:
        return RuntimeError(
            f"Client.{name}() was cancelled: the Client was closed while it ran (by "
            "close(), garbage collection or interpreter exit); keep the Client open "
            "until every thread is done with it"
        )

    # -- lifetime ----------------------------------------------------------

    def _start(self) -> _Loop:
        with self._lock:
            if self._closed:
                raise RuntimeError(
                    "this Client is closed: create a new Client(...), or use one "
                    "`with Client(...) as client:` block for all the calls"
                )
            loop = self._loop
            if loop is not None and loop.pid == os.getpid():
                return loop  # another thread started it while we waited
            if loop is not None:
                self._forget_after_fork()
            loop = _in_helper_thread(self._open_loop) if self._refused() else self._open_loop()
            self._loop = loop
            return loop

    def _open_loop(self) -> _Loop:
        # Imported on first use: 25-50 ms of `import activatepro_async` (anyio's
        # thread portals) that an async-only program never needs.
        from anyio.from_thread import start_blocking_portal

        cm = start_blocking_portal(self.backend)
        portal = cm.__enter__()
        try:
            client, thread_id = portal.call(self._make_client)
        except BaseException:
            cm.__exit__(*sys.exc_info())
            raise
        return _Loop(cm, portal, client, thread_id)

    async def _make_client(self) -> tuple[AsyncClient, int]:
        # Runs on the portal's loop: the httpx client is born where it is used.
        threading.current_thread().name = f"activatepro-portal-{self.backend}"
        if self._shares_connections:
            raise ConfigurationError(
                "this Client was used before os.fork() with your own http_client= (or a "
                "network transport=), whose connections belong to the parent process: "
                "create the Client in the child (e.g. in Celery's worker_process_init), "
                "or let the SDK make its own httpx client"
            )
        settings = self._settings
        if settings["http_client"] is not None or isinstance(
            settings["transport"], httpx.AsyncHTTPTransport
        ):
            self._shares_connections = True
        client = AsyncClient(self._secret.get(), **settings)
        return client, threading.get_ident()

    def _forget_after_fork(self) -> None:
        """In a forked child: drop the parent's loop without touching its dead thread."""
        if self._loop is not None:
            _ABANDONED.append(self._loop)
            self._loop = None

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # another thread may have held it at the fork
        self._forget_after_fork()

    def close(self) -> None:
        """Close the AsyncClient on its loop, then end the loop and its thread."""
        with self._lock:
            self._closed = True
            loop, self._loop = self._loop, None
        if loop is None:
            return
        if loop.pid != os.getpid():
            _ABANDONED.append(loop)
        elif threading.get_ident() == loop.thread_id:
            # The Client was garbage-collected on its own loop's thread, which
            # cannot wait for itself to end: let another thread do it.
            threading.Thread(
                target=_close_loop, args=(loop,), name="activatepro-portal-close", daemon=True
            ).start()
        elif self._refused():
            _in_helper_thread(lambda: _close_loop(loop))
        else:
            _close_loop(loop)


def _close_loop(loop: _Loop) -> None:
    try:
        loop.portal.call(loop.client.aclose)
        # Calls still running (in other threads, or a daemon thread at exit) are
        # cancelled rather than awaited: they could wait for a whole timeout.
        loop.portal.call(loop.portal.stop, True)
    finally:
        # Stops the portal if it still runs, and joins its thread.
        loop.cm.__exit__(None, None, None)


_RUNNERS: weakref.WeakSet[_Runner] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for runner in list(_RUNNERS):
        runner.after_fork_in_child()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _keep_open() -> None:
    """The ``close()`` of a :meth:`Client.with_options` copy: the pool is the original's."""


def _twin(
    method: Callable[Concatenate[AsyncClient, _P], Coroutine[Any, Any, _R]],
) -> Callable[Concatenate[Client, _P], _R]:
    """The blocking twin of a coroutine method of AsyncClient, for the body of Client.

    Typed through ``_P``/``_R``, so ``Client().get_user`` has the exact parameters
    and result of ``AsyncClient.get_user`` for mypy and IDEs; at run time it has its
    signature and docstring too (``inspect.signature`` follows ``__wrapped__``).
    """
    name = method.__name__

    @functools.wraps(method)
    def twin(self: Client, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        result: _R = self._runner.call(name, args, kwargs, self._options)
        return result

    twin.__qualname__ = f"Client.{name}"
    if method.__doc__:
        twin.__doc__ = method.__doc__.replace("await ", "")
    return twin


class Client:
    """The ActivatePro User Profile API v2 for code that is not async: Django
    views, Celery tasks, scripts, notebooks.

    >>> with Client(api_key="...") as client:
    ...     user = client.get_user("42")

    It takes the arguments of :class:`AsyncClient` and has each of its methods
    as a plain function, with the same parameters, results and exceptions: it
    runs that very ``AsyncClient`` on an event loop in a thread of its own
    (started on first use, ended by :meth:`close`). One ``Client`` may be shared
    by many threads, and used after ``os.fork()`` (the child makes fresh
    connections). Callbacks such as ``on_progress`` run on that thread.

    In async code use :class:`AsyncClient`: ``Client`` works there too (it does
    not fail with "event loop is already running"), but each call blocks the
    caller's event loop until the answer comes.

    Args:
        backend: ``"asyncio"`` (the default) or ``"trio"`` (needs ``trio``
            installed): the event loop the client runs on. Only ``Client`` has it.

    The other arguments are those of :class:`AsyncClient`. Your own
    ``http_client=`` is used on the client's thread; do not use it elsewhere,
    and since its connections cannot be renewed, a ``Client`` given one and
    used before ``os.fork()`` refuses to work in the child: create it there.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = 30.0,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        tracer_provider: TracerProvider | None = None,
        backend: str = "asyncio",
    ) -> None:
        if backend not in BACKENDS:
            raise ConfigurationError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "trio" and importlib.util.find_spec("trio") is None:
            raise ConfigurationError("backend='trio' needs trio: pip install trio")
        # Checked here, not on first use, so that a wrong setting fails where it is made.
        secret = _Secret(_check_api_key(api_key))
        self.base_url = _check_base_url(base_url)
        check_timeout(timeout)
        check_headers(default_headers)
        self.backend = backend
        settings: dict[str, Any] = {
            "base_url": self.base_url,
            "timeout": timeout,
            "max_retries": max_retries,
            "retry": retry,
            "default_headers": default_headers,
            "http_client": http_client,
            "transport": transport,
            "tracer_provider": tracer_provider,
        }
        self._runner = _Runner(backend, settings, secret)
        self._options: dict[str, Any] = {}
        self._original: Client | None = None
        # The callback holds the runner, never the client, so the client can be
        # collected; weakref.finalize also calls it at interpreter exit.
        self._finalizer: Callable[[], object] = weakref.finalize(self, self._runner.close)

    def with_options(
        self,
        *,
        timeout: float | httpx.Timeout | NotGiven | None = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        retry: RetryPolicy | NotGiven = NOT_GIVEN,
        default_headers: Mapping[str, str] | NotGiven = NOT_GIVEN,
    ) -> Client:
        """A copy of this client with other settings, on the same thread and connections.

        As :meth:`AsyncClient.with_options`: what is not given is kept,
        ``default_headers`` are added to this client's. Closing the copy does
        nothing; closing this client ends the thread and the connections, and
        the copy's calls then raise as those of a closed ``Client``.

        >>> patient = client.with_options(timeout=120, max_retries=10)
        """
        # Checked here, as AsyncClient.with_options would, so a bad one fails where it is made.
        options = dict(self._options)
        if not isinstance(timeout, NotGiven):
            check_timeout(timeout)
            options["timeout"] = timeout
        if not isinstance(retry, NotGiven):
            if not isinstance(retry, RetryPolicy):
                raise ConfigurationError(f"retry must be a RetryPolicy, got {type(retry).__name__}")
            # As on AsyncClient: a policy given later replaces an earlier max_retries.
            options.pop("max_retries", None)
            options["retry"] = retry
        if not isinstance(max_retries, NotGiven):
            RetryPolicy(max_retries=max_retries)  # its validator says what is wrong
            options["max_retries"] = max_retries
        if not isinstance(default_headers, NotGiven):
            headers = check_headers(default_headers)
            options["default_headers"] = merge_headers(options.get("default_headers", {}), headers)
        clone = copy.copy(self)
        clone._options = options
        # The copy's close() does nothing; it holds the original, whose collection
        # would end the thread and the connections under the copy.
        clone._finalizer = _keep_open
        clone._original = self._original or self
        return clone

    def __repr__(self) -> str:
        return f"<Client base_url={self.base_url!r} backend={self.backend!r}>"

    # -- lifetime ----------------------------------------------------------

    def close(self) -> None:
        """Close the connections and end the client's thread; later calls raise.

        Safe to call more than once. Do not call it while other threads still
        use the client.
        """
        self._finalizer()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the API: one twin per public coroutine method of AsyncClient ------
    # (tests/test_sync_parity.py fails when one is missing or differs)

    get_user = _twin(AsyncClient.get_user)
    get_user_by_email = _twin(AsyncClient.get_user_by_email)
    upsert_user = _twin(AsyncClient.upsert_user)
    delete_user = _twin(AsyncClient.delete_user)
    batch = _twin(AsyncClient.batch)
    get_tracking = _twin(AsyncClient.get_tracking)
    wait_for_tracking = _twin(AsyncClient.wait_for_tracking)
    # A sync iterable (a generator over a file, a Django queryset.iterator()) is
    # read lazily on the client's thread; on_progress runs there too.
    upsert_many = _twin(AsyncClient.upsert_many)
    delete_many = _twin(AsyncClient.delete_many)
    # The state file is opened, written and closed on the client's thread.
    sync_users = _twin(AsyncClient.sync_users)
