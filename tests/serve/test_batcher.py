"""The dynamic batcher, in-process with the real tiny run: concurrent requests share rounds, each gets its own
rows in order, a request that makes the model fail fails alone; the queue is bounded, deadlines hold, and work
nobody waits for any more is not done."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")

from llmcls.errors import ConfigError
from llmcls.inference.predict import Predictor
from llmcls.serve.batcher import Batcher, DeadlineExceeded, Overloaded
from llmcls.serve.settings import ServeSettings
from support.serving import FailingPredictor, SlowPredictor

TEXTS = ["a gripping film", "dull", "an utterly charming , funny and moving story", "", "bad bad bad"]


@pytest.fixture(scope="module")
def predictor(trained_sst2):
    base = Predictor.load(trained_sst2.run_dir, backend="auto")
    return FailingPredictor(base.run, base.forward, batch_size=base.batch_size)


def test_concurrent_requests_share_rounds_and_keep_their_rows(predictor):
    rounds = []

    async def main():
        batcher = Batcher(wait_s=0.05, max_texts=1024, max_queue_texts=1024, on_round=rounds.append)
        batcher.start()
        answers = await asyncio.gather(
            *(batcher.probabilities(predictor, [t, *TEXTS[:i]], timeout_s=60) for i, t in enumerate(TEXTS))
        )
        await batcher.stop()
        return answers

    answers = asyncio.run(main())
    assert rounds == [sum(1 + i for i in range(len(TEXTS)))]  # one round for all five requests
    for i, (text, got) in enumerate(zip(TEXTS, answers)):
        np.testing.assert_allclose(got, predictor.class_probabilities([text, *TEXTS[:i]]), atol=1e-6)


def test_a_failing_request_fails_alone(predictor):
    async def main():
        batcher = Batcher(wait_s=0.05, max_texts=1024, max_queue_texts=1024)
        batcher.start()
        results = await asyncio.gather(
            batcher.probabilities(predictor, ["fine"], timeout_s=60),
            batcher.probabilities(predictor, ["boom"], timeout_s=60),
            batcher.probabilities(predictor, ["also fine"], timeout_s=60),
            return_exceptions=True,
        )
        after = await batcher.probabilities(predictor, ["still serving"], timeout_s=60)
        await batcher.stop()
        return results, after

    (fine, boom, also_fine), after = asyncio.run(main())
    assert isinstance(boom, RuntimeError) and str(boom) == "boom"
    assert fine.shape == also_fine.shape == after.shape == (1, 2)


def slow(predictor, seconds_per_batch=0.1, batches=10) -> SlowPredictor:
    return SlowPredictor(
        predictor.run,
        predictor.forward,
        batch_size=predictor.batch_size,
        seconds_per_batch=seconds_per_batch,
        batches=batches,
    )


def test_a_full_queue_refuses_and_later_requests_are_served(predictor):
    model = slow(predictor, batches=5)

    async def main():
        batcher = Batcher(wait_s=0.0, max_texts=2, max_queue_texts=4)
        batcher.start()
        first = asyncio.ensure_future(batcher.probabilities(model, ["a", "b"], timeout_s=60))
        await asyncio.sleep(0.2)  # the first request is on the model now; the queue is empty
        queued = asyncio.ensure_future(batcher.probabilities(model, ["c", "d", "e"], timeout_s=60))
        await asyncio.sleep(0)
        with pytest.raises(Overloaded, match="the queue is full .3 texts waiting; max_queue_texts 4"):
            await batcher.probabilities(model, ["f", "g"], timeout_s=60)
        answers = await asyncio.gather(first, queued)
        after = await batcher.probabilities(model, ["h", "i", "j", "k"], timeout_s=60)
        await batcher.stop()
        return answers, after

    (first, queued), after = asyncio.run(main())
    assert first.shape == (2, 2) and queued.shape == (3, 2) and after.shape == (4, 2)


def test_deadlines_answer_in_time_and_drop_work_nobody_waits_for(predictor):
    """A request still queued at its deadline is dropped unseen (started False); one on the model gets its answer
    at the deadline (started True), and the pass stops at its next batch instead of running its 50."""
    model = slow(predictor, seconds_per_batch=0.05, batches=50)

    async def main():
        batcher = Batcher(wait_s=0.0, max_texts=1, max_queue_texts=100)
        batcher.start()
        running = asyncio.ensure_future(batcher.probabilities(model, ["running"], timeout_s=0.5))
        await asyncio.sleep(0.1)
        queued = asyncio.ensure_future(batcher.probabilities(model, ["queued"], timeout_s=0.2))
        results = await asyncio.gather(running, queued, return_exceptions=True)
        await asyncio.sleep(0.3)  # the pass notices that nobody waits for it
        batches = model.batches_run
        await batcher.stop()
        return results, batches

    start = time.monotonic()
    (running, queued), batches = asyncio.run(main())
    assert isinstance(running, DeadlineExceeded) and running.started
    assert isinstance(queued, DeadlineExceeded) and not queued.started
    assert "queued" not in model.prepared  # never tokenized, never run
    assert batches < 20 and time.monotonic() - start < 2.0


def test_a_request_whose_caller_left_is_not_computed(predictor):
    model = slow(predictor, seconds_per_batch=0.05, batches=4)

    async def main():
        batcher = Batcher(wait_s=0.0, max_texts=1, max_queue_texts=100)
        batcher.start()
        first = asyncio.ensure_future(batcher.probabilities(model, ["first"], timeout_s=60))
        await asyncio.sleep(0.05)
        left = asyncio.ensure_future(batcher.probabilities(model, ["left"], timeout_s=60))
        await asyncio.sleep(0.01)
        left.cancel()  # the client disconnected: the endpoint cancels its wait
        await first
        await batcher.probabilities(model, ["after"], timeout_s=60)
        await batcher.stop()

    asyncio.run(main())
    assert model.prepared == ["first", "after"]


def test_draining_refuses_queued_and_new_requests_and_answers_the_running_one(predictor):
    model = slow(predictor, seconds_per_batch=0.05, batches=4)

    async def main():
        batcher = Batcher(wait_s=0.0, max_texts=1, max_queue_texts=100)
        batcher.start()
        running = asyncio.ensure_future(batcher.probabilities(model, ["running"], timeout_s=60))
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(batcher.probabilities(model, ["queued"], timeout_s=60))
        await asyncio.sleep(0)
        batcher.drain(grace_s=10)
        results = await asyncio.gather(running, queued, return_exceptions=True)
        with pytest.raises(Overloaded, match="shutting down"):
            await batcher.probabilities(model, ["new"], timeout_s=60)
        assert not batcher.running
        await batcher.stop()
        return results

    running, queued = asyncio.run(main())
    assert running.shape == (1, 2)
    assert isinstance(queued, Overloaded) and queued.draining


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"max_texts": 0}, "serve --max-texts: must be at least 1"),
        ({"batch_wait_ms": -1}, "serve --batch-wait-ms: must be between 0 and 1000"),
        ({"max_queue_texts": 10, "max_texts": 20}, "serve --max-queue-texts: must be at least --max-texts"),
        ({"request_timeout_s": 0}, "serve --request-timeout: must be between 0 and 3600"),
        ({"max_concurrent": 0}, "serve --max-concurrent: must be at least 1"),
    ],
)
def test_settings_refuse_nonsense(changes, message):
    with pytest.raises(ConfigError, match=message):
        ServeSettings(**changes)


def test_settings_travel_to_workers_as_json(tmp_path):
    settings = ServeSettings(port=9000, max_texts=7, token_file=tmp_path / "t", allowed_hosts=("Example.org", "*"))
    assert ServeSettings.from_json(settings.to_json()) == settings
