import numpy as np
import pytest
from scipy import stats

from ml.datasets import SCENARIOS, UnknownScenarioError, generate

DAYS, DRIFT_DAY = 10, 5


def halves(scenario: str, seed: int = 1):
    frame = generate(scenario, days=DAYS, rows_per_day=2000, drift_day=DRIFT_DAY, seed=seed)
    day = (frame["scored_at"] - frame["scored_at"].min().normalize()).dt.days
    return frame[day < DRIFT_DAY], frame[day >= DRIFT_DAY]


def test_same_seed_same_data_other_seed_other_data():
    first = generate("covariate_shift", days=3, rows_per_day=50, seed=4)
    assert first.equals(generate("covariate_shift", days=3, rows_per_day=50, seed=4))
    assert not first.equals(generate("covariate_shift", days=3, rows_per_day=50, seed=5))
    assert first["request_id"].is_unique
    assert first["scored_at"].is_monotonic_increasing


def test_unknown_scenario_names_the_choices():
    with pytest.raises(UnknownScenarioError, match="covariate_shift"):
        generate("sudden_chaos")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_untouched_features_do_not_drift(scenario):
    before, after = halves(scenario)
    untouched = {"annual_income", "applicant_age", "loan_term_months"}
    for feature in untouched:
        assert stats.ks_2samp(before[feature], after[feature]).pvalue > 0.001, feature
    if scenario in ("no_drift", "concept_drift"):
        for feature in ("car_value", "credit_score"):
            assert stats.ks_2samp(before[feature].dropna(), after[feature].dropna()).pvalue > 0.001
        table = [
            before["employment_type"].value_counts().sort_index(),
            after["employment_type"].value_counts().sort_index(),
        ]
        assert stats.chi2_contingency(np.array(table)).pvalue > 0.001


def test_covariate_shift_moves_car_value_from_the_drift_day():
    before, after = halves("covariate_shift")
    assert after["car_value"].median() / before["car_value"].median() == pytest.approx(1.6, rel=0.08)


def test_category_shift_changes_the_employment_mix():
    before, after = halves("category_shift")
    assert before["employment_type"].eq("salaried").mean() == pytest.approx(0.62, abs=0.02)
    assert after["employment_type"].eq("salaried").mean() == pytest.approx(0.30, abs=0.02)


def test_missing_surge_raises_missing_credit_scores():
    before, after = halves("missing_surge")
    assert before["credit_score"].isna().mean() == pytest.approx(0.02, abs=0.01)
    assert after["credit_score"].isna().mean() == pytest.approx(0.40, abs=0.02)


def test_concept_drift_changes_labels_not_inputs():
    before, after = halves("concept_drift")
    south_before = before.loc[before["region"] == "south", "repaid"].mean()
    south_after = after.loc[after["region"] == "south", "repaid"].mean()
    assert south_before - south_after > 0.2
