"""The soak report's judgement: memory flat or growing once warmed up, errors counted, the peak chosen."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from charter_ops.soak import SERVICES, Sample, SoakReport, count_errors, memory_growth, peak_start

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


def test_the_soak_replays_the_morning_peak_of_the_latest_weekday() -> None:
    monday = datetime(2024, 3, 4, 8, 0, tzinfo=UTC)
    assert peak_start(monday) == datetime(2024, 3, 1, 9, 0, tzinfo=UTC)  # Friday 10:00 in Paris
    thursday = datetime(2024, 7, 4, 8, 0, tzinfo=UTC)
    assert peak_start(thursday) == datetime(2024, 7, 3, 8, 0, tzinfo=UTC)  # summer time
