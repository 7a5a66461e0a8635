"""The dynamic batcher, in-process with the real tiny run: concurrent requests share rounds, each gets its own
rows in order, and a request that makes the model fail fails alone."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("fastapi")

from llmcls.inference.predict import Predictor  # noqa: E402
from llmcls.serve.batcher import Batcher  # noqa: E402
from llmcls.serve.settings import ServeSettings  # noqa: E402
from support.serving import FailingPredictor  # noqa: E402
from llmcls.errors import ConfigError  # noqa: E402

TEXTS = ["a gripping film", "dull", "an utterly charming , funny and moving story", "", "bad bad bad"]


@pytest.fixture(scope="module")
def predictor(trained_sst2):
    base = Predictor.load(trained_sst2.run_dir, backend="auto")
    return FailingPredictor(base.run, base.forward, base.batch_size)


def test_concurrent_requests_share_rounds_and_keep_their_rows(predictor):
    rounds = []

    async def main():
        batcher = Batcher(wait_s=0.05, max_texts=1024, on_round=rounds.append)
        batcher.start()
        answers = await asyncio.gather(*(batcher.probabilities(predictor, [t, *TEXTS[:i]]) for i, t in
                                         enumerate(TEXTS)))
        await batcher.stop()
        return answers

    answers = asyncio.run(main())
    assert rounds == [sum(1 + i for i in range(len(TEXTS)))]  # one round for all five requests
    for i, (text, got) in enumerate(zip(TEXTS, answers)):
        np.testing.assert_allclose(got, predictor.class_probabilities([text, *TEXTS[:i]]), atol=1e-6)


def test_a_failing_request_fails_alone(predictor):
    async def main():
        batcher = Batcher(wait_s=0.05, max_texts=1024)
        batcher.start()
        results = await asyncio.gather(batcher.probabilities(predictor, ["fine"]),
                                       batcher.probabilities(predictor, ["boom"]),
                                       batcher.probabilities(predictor, ["also fine"]), return_exceptions=True)
        after = await batcher.probabilities(predictor, ["still serving"])
        await batcher.stop()
        return results, after

    (fine, boom, also_fine), after = asyncio.run(main())
    assert isinstance(boom, RuntimeError) and str(boom) == "boom"
    assert fine.shape == also_fine.shape == after.shape == (1, 2)


@pytest.mark.parametrize("changes, message", [
    ({"max_texts": 0}, "serve --max-texts: must be at least 1"),
    ({"batch_wait_ms": -1}, "serve --batch-wait-ms: must be between 0 and 1000"),
])
def test_settings_refuse_nonsense(changes, message):
    with pytest.raises(ConfigError, match=message):
        ServeSettings(**changes)


def test_settings_travel_to_workers_as_json(tmp_path):
    settings = ServeSettings(port=9000, max_texts=7, token_file=tmp_path / "t")
    assert ServeSettings.from_json(settings.to_json()) == settings
