"""A prediction's JSON row: the one shape of `llmcls predict --format jsonl` and POST /v1/predict."""

import json

from llmcls.inference.predict import Prediction
from llmcls.inference.rows import prediction_row

SINGLE = Prediction("a fine film", "pos", 0.9, [("pos", 0.9), ("neg", 0.1)], ["pos"], [0.9])
MULTI = Prediction("news on sport", None, None, [("sport", 0.8), ("news", 0.6)], ["sport", "news"], [0.8, 0.6])


def test_a_single_label_row_holds_the_label_its_probability_and_the_top_k_in_this_order():
    row = prediction_row(SINGLE, multi_label=False)
    assert json.dumps(row) == (
        '{"label": "pos", "probability": 0.9, '
        '"top_k": [{"label": "pos", "probability": 0.9}, {"label": "neg", "probability": 0.1}]}'
    )


def test_a_multi_label_row_holds_the_chosen_labels_and_their_probabilities_and_no_text():
    row = prediction_row(MULTI, multi_label=True)
    assert list(row) == ["labels", "probabilities", "top_k"]
    assert row["labels"] == ["sport", "news"] and row["probabilities"] == [0.8, 0.6]
    assert row["top_k"][0] == {"label": "sport", "probability": 0.8}
