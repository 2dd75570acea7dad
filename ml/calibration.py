"""Score calibration for confidence-based performance estimation (CBPE).

A binary classifier's probability is calibrated on the reference set of its version: isotonic
regression of "the label is the positive class" on the score (scikit-learn's IsotonicRegression,
clipped outside the reference's scores and to [0, 1]). The fit is stored as a table of segments
that SQL joins a logged score to (raw.score_calibration, written by warehouse/ingest.py): on
[score_from, score_to] the calibrated probability runs linearly from calibrated_from to
calibrated_to, which is exactly what `IsotonicRegression.predict` computes between its thresholds.
dbt's estimate (int_estimated_performance) then needs no Python: the expected confusion matrix of
a window is a sum over its rows of the calibrated probabilities.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SEGMENT_COLUMNS = ("segment", "score_from", "score_to", "calibrated_from", "calibrated_to")


def calibration_segments(scores: np.ndarray, is_positive: np.ndarray) -> pd.DataFrame:
    """The isotonic calibration of `scores` to `is_positive` (0/1) as segments (SEGMENT_COLUMNS),
    in score order; empty when no row has a finite score. One distinct score gives one segment of
    zero width (score_from == score_to), whose value applies to every score."""
    from sklearn.isotonic import IsotonicRegression  # scikit-learn: only when a reference is loaded

    scores = np.asarray(scores, dtype=float)
    is_positive = np.asarray(is_positive, dtype=float)
    usable = np.isfinite(scores) & np.isfinite(is_positive)
    if not usable.any():
        return pd.DataFrame(columns=list(SEGMENT_COLUMNS))
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    model.fit(scores[usable], is_positive[usable])
    x, y = model.X_thresholds_, model.y_thresholds_
    if len(x) == 1:
        x, y = np.repeat(x, 2), np.repeat(y, 2)
    return pd.DataFrame(
        {
            "segment": np.arange(len(x) - 1, dtype=np.int32),
            "score_from": x[:-1],
            "score_to": x[1:],
            "calibrated_from": y[:-1],
            "calibrated_to": y[1:],
        }
    )
