"""The soak report's judgement: memory flat or growing once warmed up, errors counted, the peak chosen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from charter_ops.kafka.local import LocalKafka
from charter_ops.soak import SERVICES, Sample, SoakConfig, SoakReport, count_errors, day_start, memory_growth

MIB = 1024 * 1024


def report(series: list[int]) -> SoakReport:
    samples = [
        Sample(elapsed=10.0 * i, rss=dict.fromkeys(SERVICES, rss), lag=dict.fromkeys(SERVICES, 5.0 * i), accepted=i)
        for i, rss in enumerate(series)
    ]
    return SoakReport(duration_seconds=10.0 * len(series), rate=700.0, samples=samples)


def test_memory_that_warms_up_then_saw_tooths_is_flat_and_a_leak_is_not() -> None:
    warm_then_flat = [50 * MIB, 120 * MIB, 180 * MIB] + [200 * MIB + (i % 3) * 4 * MIB for i in range(30)]
    assert memory_growth(warm_then_flat) < 8 * MIB
    assert report(warm_then_flat).memory_flat()
    assert report(warm_then_flat).ok()

    leaking = [200 * MIB + i * 3 * MIB for i in range(40)]  # +3 MiB every sample, forever
    assert memory_growth(leaking) > 60 * MIB
    assert not report(leaking).memory_flat()
    assert not report(leaking).ok()
    assert "GREW" in report(leaking).summary()


def test_peaks_errors_and_deaths_are_reported() -> None:
    soak = report([100 * MIB, 150 * MIB, 140 * MIB])
    assert soak.peak_rss() == dict.fromkeys(SERVICES, 150 * MIB)
    assert soak.max_lag() == dict.fromkeys(SERVICES, 10.0)
    soak.died = ["indicators"]
    assert not soak.ok()
    assert "died: indicators" in soak.summary()


def test_only_the_services_own_errors_count(tmp_path: Path) -> None:
    log = tmp_path / "ingest.log"
    log.write_text(
        "2026-11-25 13:12:32,130 ERROR charter_indicators.app: publishing failed\n"
        "2026-11-25 13:12:34,095 ERROR aiokafka: Unable connect to node with id 1\n"
        "2026-11-25 13:12:35,000 INFO charter_runtime.http: ingest connected\n"
        "2026-11-25 13:12:36,000 ERROR charter_runtime.http: unhandled error\n"
    )
    assert count_errors(log) == 2
    assert count_errors(tmp_path / "missing.log") == 0


def test_the_soak_replays_a_working_day_of_the_latest_weekday_from_its_opening() -> None:
    monday = datetime(2024, 3, 4, 8, 0, tzinfo=UTC)
    assert day_start(monday) == datetime(2024, 3, 1, 7, 0, tzinfo=UTC)  # Friday 08:00 in Paris
    thursday = datetime(2024, 7, 4, 8, 0, tzinfo=UTC)
    assert day_start(thursday) == datetime(2024, 7, 3, 6, 0, tzinfo=UTC)  # summer time


def test_the_soak_runs_event_time_faster_at_the_national_density_so_the_wall_rate_is_the_factor() -> None:
    config = SoakConfig(run_dir=Path("."), kafka=LocalKafka(home=Path(".")), ports={}, duration=timedelta(hours=1))
    assert (config.rate, config.time_speed, config.simulated_rate) == (700.0, 10.0, 70.0)
    live = SoakConfig(
        run_dir=Path("."), kafka=LocalKafka(home=Path(".")), ports={}, duration=timedelta(hours=1), speed=1.0
    )
    assert (live.rate, live.simulated_rate) == (700.0, 700.0)
