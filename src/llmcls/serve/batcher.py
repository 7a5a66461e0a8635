"""Dynamic batching: requests that arrive together share one round of the model.

The first request of a round waits up to `wait_s` for others (or until `max_texts` texts are gathered); their texts
go through the model together, where `Predictor` sorts them by length into batches, and each request gets back its
own rows. The model runs in one worker thread, off the event loop; while it runs, new requests queue up for the
next round, so under load rounds grow by themselves and throughput approaches that of offline batch prediction.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from llmcls.inference.predict import Predictor


@dataclass
class _Job:
    predictor: Predictor  # the run's, or one with other chunking settings
    texts: list[str]
    future: asyncio.Future


class Batcher:
    """Gathers concurrent requests into rounds of the model.

    Args:
        wait_s: how long the first request of a round waits for more.
        max_texts: a round stops gathering at this many texts.
        on_round: called with the number of texts of each round (for metrics).
    """

    def __init__(self, wait_s: float, max_texts: int, on_round: Callable[[int], None] = lambda n: None):
        self.wait_s = wait_s
        self.max_texts = max_texts
        self.on_round = on_round
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="llmcls-model")
        self._task: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start gathering (in the running event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Answer what is queued, then stop and release the model thread."""
        if self._task is not None:
            await self._queue.put(None)
            await self._task
        self._executor.shutdown(wait=True)

    async def probabilities(self, predictor: Predictor, texts: list[str]) -> np.ndarray:
        """[len(texts), classes] float64 class probabilities of `texts`, in order, computed in some round.

        Raises:
            Whatever the model raised for these texts (other requests of the round are not affected).
        """
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(predictor, texts, future))
        return await future

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
            groups: dict[int, list[_Job]] = {}
            for job in jobs:  # requests with the same chunking settings share a pass
                groups.setdefault(id(job.predictor), []).append(job)
            for group in groups.values():
                await self._run(group)
        while not self._queue.empty():  # stop() came: answer anything that slipped in behind it
            job = self._queue.get_nowait()
            if job is not None:
                await self._run([job])

    async def _run(self, jobs: list[_Job]) -> None:
        """One pass of the model over the texts of `jobs`; if it fails, each job alone, so that only the request
        that caused the failure gets it."""
        texts = [text for job in jobs for text in job.texts]
        loop = asyncio.get_running_loop()
        try:
            probs = await loop.run_in_executor(self._executor, jobs[0].predictor.class_probabilities, texts)
        except Exception as exc:
            if len(jobs) > 1:
                for job in jobs:
                    await self._run([job])
            elif not jobs[0].future.done():
                jobs[0].future.set_exception(exc)
            return
        self.on_round(len(texts))
        start = 0
        for job in jobs:
            if not job.future.done():  # a client that went away has its future cancelled
                job.future.set_result(probs[start:start + len(job.texts)])
            start += len(job.texts)
