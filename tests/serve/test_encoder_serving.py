"""`llmcls serve` on a fine-tuned encoder run: a real server process answers with the ONNX export, without torch,
what the run's Predictor says."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("tokenizers")
import httpx

from llmcls.inference.predict import Predictor
from support.serving import running_server


def test_an_encoder_run_is_served_as_a_bilstm_run_is(trained_encoder, tmp_path):
    texts = ["a gripping , beautifully acted film", "a dull , lifeless mess", "what is the capital of peru ?"]
    expected = Predictor.load(trained_encoder.run_dir, "cpu", backend="onnx").predict_proba(texts)
    with running_server(trained_encoder.run_dir, log_dir=tmp_path) as server:
        answer = httpx.post(f"{server.url}/v1/predict", json={"texts": texts, "top_k": 2}, timeout=30)
        info = httpx.get(f"{server.url}/v1/info", timeout=10).json()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["backend"] == "onnx" and info["config"]["model"]["encoder"] is not None
    for row, probs in zip(body["predictions"], expected):
        top = {item["label"]: item["probability"] for item in row["top_k"]}
        served = np.array([top[label] for label in info["labels"]])
        np.testing.assert_allclose(served, probs, atol=2e-3)  # the answer rounds to 3 decimals
