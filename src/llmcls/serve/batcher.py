"""Dynamic batching with backpressure: requests that arrive together share one pass of the model, the queue is
bounded, every request has a deadline, and nothing is computed for a request that is no longer waiting.

The first request of a round waits up to `wait_s` for others (or until `max_texts` texts are gathered). On the
model thread, each request's texts are tokenized (and cut into windows) on their own and checked against the
server's work limits, so that a request over them is refused alone; the survivors go through the network together
(`Predictor.score`), and each request gets back its own rows. While a pass runs, new requests queue up for the
next round, so under load rounds grow by themselves.

Refusals, as exceptions of `probabilities`: `Overloaded` (the queue is full, or the server is draining: 503),
`DeadlineExceeded` (no answer within the request's time: 503 if the model had not started on it, else 504).
A request whose client went away, or whose deadline passed, is dropped before the model runs it, and a pass
whose requests have all gone stops at its next batch.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmcls.inference.predict import Predictor, PreparedTexts


class Overloaded(Exception):
    """The server takes no more work now: its queue is full, or it is shutting down (`draining`)."""

    def __init__(self, message: str, draining: bool = False):
        super().__init__(message)
        self.draining = draining


class DeadlineExceeded(Exception):
    """A request got no answer within its time; `started`: whether the model had begun on it."""

    def __init__(self, seconds: float, started: bool):
        state = "the model was still running it" if started else "it was still queued"
        super().__init__(f"no answer within {seconds:g} s ({state})")
        self.started = started


class _Abandoned(Exception):
    """Every request of a pass has gone (answered by its deadline, or its client left): stop computing."""


@dataclass(eq=False)
class _Job:
    predictor: Predictor  # the run's, or a copy with other chunking settings
    texts: list[str]
    future: asyncio.Future
    timeout_s: float
    started: bool = False
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class Batcher:
    """Gathers concurrent requests into rounds of the model.

    Args:
        wait_s: how long the first request of a round waits for more.
        max_texts: a round stops gathering at this many texts.
        max_queue_texts: texts waiting for the model at most; a request that would exceed it is refused.
        admit: called on the model thread with each request's prepared texts; raises to refuse that request
            alone (the server's work limits).
        on_round: called with the number of texts of each round (for metrics).
    """

    def __init__(
        self,
        *,
        wait_s: float,
        max_texts: int,
        max_queue_texts: int,
        admit: Callable[[PreparedTexts], None] = lambda prepared: None,
        on_round: Callable[[int], None] = lambda n: None,
    ):
        self.wait_s, self.max_texts, self.max_queue_texts = wait_s, max_texts, max_queue_texts
        self.admit, self.on_round = admit, on_round
        self.draining = False
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._queued_texts = 0
        self._running: list[_Job] = []
        self._thread = _ModelThread()
        self._task: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self.draining

    @property
    def queued_texts(self) -> int:
        return self._queued_texts

    def start(self) -> None:
        """Start gathering (in the running event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def drain(self, grace_s: float) -> None:
        """Shutting down: refuse new requests and the queued ones (Overloaded), and answer the running pass's
        requests within `grace_s` (DeadlineExceeded past it)."""
        self.draining = True
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if job is not None:
                self._queued_texts -= len(job.texts)
                _fail(job, Overloaded("the server is shutting down", draining=True))
        loop = asyncio.get_running_loop()
        for job in self._running:
            if job.timer is not None:
                job.timer.cancel()
            job.timer = loop.call_later(max(0.0, grace_s), self._expire, job)

    async def stop(self) -> None:
        """Stop gathering and release the model thread, without waiting for a pass still running."""
        if not self.draining:
            self.drain(0.0)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._thread.close()

    async def probabilities(self, predictor: Predictor, texts: list[str], *, timeout_s: float) -> np.ndarray:
        """[len(texts), classes] float64 class probabilities of `texts`, in order, computed in some round.

        Raises:
            Overloaded: the queue is full, or the server is draining.
            DeadlineExceeded: no answer within `timeout_s`.
            Whatever the model or `admit` raised for these texts (other requests of the round are not affected).
        """
        if self.draining:
            raise Overloaded("the server is shutting down", draining=True)
        if self._queued_texts + len(texts) > self.max_queue_texts:
            raise Overloaded(
                f"the queue is full ({self._queued_texts} texts waiting; max_queue_texts {self.max_queue_texts})"
            )
        loop = asyncio.get_running_loop()
        job = _Job(predictor, texts, loop.create_future(), timeout_s)
        job.timer = loop.call_later(timeout_s, self._expire, job)
        self._queued_texts += len(texts)
        self._queue.put_nowait(job)
        try:
            return await job.future
        finally:  # answered, expired, or the caller was cancelled (its client went away): the job is dropped
            job.timer.cancel()
            if not job.future.done():
                job.future.cancel()

    def _expire(self, job: _Job) -> None:
        _fail(job, DeadlineExceeded(job.timeout_s, job.started))

    async def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """The jobs of one round, starting with `first`; and whether stop() was asked for meanwhile.

        A request that finds the queue empty waits `wait_s` for company (one sleep per round, not a timed wait per
        request). Requests already queued behind it arrived while the model ran the previous round: under load
        the round then starts at once with them, since a sleep would only leave the model idle."""
        jobs, n = [first], len(first.texts)
        if self.wait_s > 0 and n < self.max_texts and self._queue.empty():
            await asyncio.sleep(self.wait_s)
        while n < self.max_texts and not self._queue.empty():
            job = self._queue.get_nowait()
            if job is None:
                return jobs, True
            jobs.append(job)
            n += len(job.texts)
        return jobs, False

    async def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            jobs, stopping = await self._gather(first)
            self._queued_texts -= sum(len(job.texts) for job in jobs)
            live = [job for job in jobs if not job.future.done()]  # expired or abandoned: not computed
            if live:
                await self._run(live)

    async def _run(self, jobs: list[_Job]) -> None:
        """One pass of the model over the texts of `jobs`, on the model thread; each job gets its rows, or the
        exception its own texts raised."""
        for job in jobs:
            job.started = True
        self._running = jobs
        try:
            outcomes = await self._thread.run(self._compute, jobs)
        finally:
            self._running = []
        self.on_round(sum(len(job.texts) for job, outcome in zip(jobs, outcomes) if isinstance(outcome, np.ndarray)))
        for job, outcome in zip(jobs, outcomes):
            if isinstance(outcome, BaseException):
                _fail(job, outcome)
            elif outcome is not None and not job.future.done():
                job.future.set_result(outcome)

    def _compute(self, jobs: list[_Job]) -> list[Any]:
        """(On the model thread.) Per job: its probabilities, the exception its texts raised, or None when every
        job had gone before the pass ended."""
        outcomes: list[Any] = [None] * len(jobs)
        ready: list[tuple[int, PreparedTexts]] = []
        for i, job in enumerate(jobs):
            try:
                prepared = job.predictor.prepare(job.texts)
                self.admit(prepared)
            except Exception as exc:
                outcomes[i] = exc
            else:
                ready.append((i, prepared))
        try:
            results = self._score(jobs, ready)
        except _Abandoned:
            return outcomes
        except Exception as exc:
            if len(ready) == 1:
                outcomes[ready[0][0]] = exc
                return outcomes
            results = [self._score_alone(jobs, item) for item in ready]  # only the failing request fails
        for (i, _), result in zip(ready, results):
            outcomes[i] = result
        return outcomes

    def _score(self, jobs: list[_Job], ready: list[tuple[int, PreparedTexts]]) -> list[np.ndarray]:
        if not ready:
            return []
        waiting = [jobs[i].future for i, _ in ready]

        def check(n: int) -> None:  # between batches: stop once nobody waits for this pass
            if all(future.done() for future in waiting):
                raise _Abandoned

        return jobs[ready[0][0]].predictor.score([prepared for _, prepared in ready], on_batch=check)

    def _score_alone(self, jobs: list[_Job], item: tuple[int, PreparedTexts]) -> Any:
        try:
            return self._score(jobs, [item])[0]
        except _Abandoned:
            return None
        except Exception as exc:
            return exc


def _fail(job: _Job, exc: BaseException) -> None:
    if not job.future.done():
        job.future.set_exception(exc)


class _ModelThread:
    """One daemon thread that runs the model's calls in order. A daemon, so that a pass still running when the
    server stops (past its graceful timeout) does not keep the process alive."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="llmcls-model", daemon=True)
        self._thread.start()

    def run(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        """A future (of the running loop) of `fn(*args)` computed on the thread."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._calls.put((loop, future, fn, args))
        return future

    def close(self) -> None:
        self._calls.put(None)

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            loop, future, fn, args = call
            try:
                outcome, failed = fn(*args), False
            except BaseException as exc:  # handed to the caller, whatever it is
                outcome, failed = exc, True
            try:
                loop.call_soon_threadsafe(_settle, future, outcome, failed)
            except RuntimeError:  # the loop has closed: nobody is waiting any more
                return


def _settle(future: asyncio.Future, outcome: Any, failed: bool) -> None:
    if future.done():
        return
    if failed:
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
