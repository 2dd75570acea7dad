import dagster as dg

from orchestration.definitions import build_definitions
from warehouse.landing import LandingWriter


def evaluate(home, cursor=None):
    definitions = build_definitions(str(home.root))
    sensor = definitions.resolve_sensor_def("landed_data_sensor")
    context = dg.build_sensor_context(
        cursor=cursor, resources={"driftmart": definitions.resources["driftmart"]}
    )
    return sensor(context), context.cursor


def test_landed_data_sensor_runs_the_pipeline_once_per_new_data(trained_home):
    empty, cursor = evaluate(trained_home)
    assert isinstance(empty, dg.SkipReason)
    writer = LandingWriter(trained_home.landing, "inference")
    writer.append([{"model": "car_loan", "request_id": "a"}])
    first, cursor = evaluate(trained_home, cursor)
    assert isinstance(first, dg.RunRequest)
    again, cursor = evaluate(trained_home, cursor)
    assert isinstance(again, dg.SkipReason) and "no new landed data" in again.skip_message
    writer.append([{"model": "car_loan", "request_id": "b"}])
    second, _ = evaluate(trained_home, cursor)
    writer.close()
    assert isinstance(second, dg.RunRequest) and second.run_key != first.run_key


def test_window_schedule_runs_each_closed_window(spec):
    definitions = build_definitions()
    schedule = definitions.resolve_schedule_def("window_schedule")
    assert schedule.cron_schedule == "0 0 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.job_name == "driftmart_pipeline"
