"""llmcls.inference.scoring: one decision threshold for every class."""

import numpy as np
import pytest

from llmcls.errors import ConfigError
from llmcls.inference.scoring import uniform_thresholds


def test_one_threshold_becomes_one_per_class():
    thresholds = uniform_thresholds(0.3, 4, multi_label=True)
    assert thresholds.dtype == np.float64 and thresholds.tolist() == [0.3] * 4


@pytest.mark.parametrize(
    ("threshold", "multi_label", "message"),
    [
        (0.3, False, r"^threshold: applies to multi-label runs only; this run has one label per text$"),
        (0.0, True, r"^threshold: must be between 0 and 1 \(got 0.0\)$"),
        (1.0, True, r"^threshold: must be between 0 and 1 \(got 1.0\)$"),
    ],
)
def test_a_threshold_for_a_single_label_run_or_out_of_range_is_refused(threshold, multi_label, message):
    with pytest.raises(ConfigError, match=message):
        uniform_thresholds(threshold, 2, multi_label=multi_label)
