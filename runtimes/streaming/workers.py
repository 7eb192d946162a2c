"""One background producer thread feeding a bounded queue, consumed in order by iteration.

The ordered frame readers (image folders, video files) and the stream loop's preprocessing
stage need the same hand-off, so it is written once here:

* **bounded** -- the producer can run only ``maxsize`` items ahead, so memory stays flat over
  hours of video and decoding never races far past inference;
* **stoppable** -- ``put`` gives up as soon as the stop event is set, so the thread never hangs
  on a full queue after its consumer has gone, and ``close`` can join it;
* **errors travel** -- an exception raised by the producer is re-raised on the consuming thread
  (after the items produced before it), instead of dying silently with the thread;
* **pollable** -- the multi-stream loop takes items with :meth:`Producer.poll` (never waits) and
  sleeps until some producer's ``on_put`` wakes it, instead of blocking on one source.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")

_END = object()  # the producer returned (or failed): nothing more will come
_POLL_S = 0.1  # how often blocked puts/gets look at the stop event


class Producer(Generic[T]):
    """Runs ``produce(put)`` on a daemon thread; iterating yields what it put, in order.

    ``put(item)`` returns False once stopping was requested: the producer should then return.
    ``stop`` may be an event shared with the caller (the stream loop's stop flag), so one
    request stops every stage; otherwise the producer owns a fresh one. The thread starts on
    the first iteration; :meth:`close` sets ``stop`` and joins it (safe to call twice); :meth:`join`
    only waits, for an owner of a shared ``stop`` that has already set it.
    """

    def __init__(self, produce: Callable[[Callable[[T], bool]], None], *, maxsize: int, name: str,
                 stop: threading.Event | None = None, on_put: Callable[[], None] | None = None) -> None:
        self._produce = produce
        self._on_put = on_put  # called after each queued item (and at the end): wakes a polling consumer
        self.finished = False  # the end (or the producer's error) was taken by the consumer
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, maxsize))
        self.stop = stop if stop is not None else threading.Event()
        self.name = name
        self._thread: threading.Thread | None = None

    def put(self, item: T) -> bool:
        """Queue ``item``, waiting for room; False (item dropped) once ``stop`` is set."""
        while not self.stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
            except queue.Full:
                continue
            if self._on_put is not None:
                self._on_put()
            return True
        return False

    def _run(self) -> None:
        try:
            self._produce(self.put)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the consuming thread
            self.put(exc)  # type: ignore[arg-type]
        finally:
            self.put(_END)  # type: ignore[arg-type]

    def start(self) -> None:
        """Start the producer thread (iteration does this; a second call is a no-op)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def __iter__(self) -> Iterator[T]:
        """Items in production order; ends when the producer is done or ``stop`` is set (and the
        queue is momentarily empty); re-raises the producer's exception."""
        self.start()
        while True:
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if self.stop.is_set():
                    return
                continue
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def poll(self) -> T | None:
        """The next item if one is queued, else None without waiting (check :attr:`finished` to
        tell "not yet" from "no more"); re-raises the producer's exception."""
        self.start()
        if self.finished:
            return None
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            return None
        if item is _END or isinstance(item, BaseException):
            self.finished = True
            if isinstance(item, BaseException):
                raise item
            return None
        return item

    @property
    def pending(self) -> bool:
        """An item (or the end) is queued: :meth:`poll` would not come back empty-handed."""
        return not self._queue.empty()

    @property
    def alive(self) -> bool:
        """True while the producer thread runs (a join that timed out leaves it running)."""
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` s for the thread to end, without requesting a stop (for a shared
        ``stop`` whose owner decides when the run is over)."""
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Ask the producer to stop and wait up to ``timeout`` s for its thread to end."""
        self.stop.set()
        self.join(timeout)
