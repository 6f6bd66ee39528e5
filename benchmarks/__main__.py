"""The benchmark suite: `make bench` (full) or `python -m benchmarks --quick` (under two minutes).

Runs on a real Kafka broker of its own (CHARTER_KAFKA_PORT / CHARTER_KAFKA_CONTROLLER_PORT, else
free ports) and prints one table with the machine on it. It prints figures and where each stands
against its target; it fails only if something crashes, never on a figure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks import indicators, ingest, peer
from benchmarks.harness import broker, machine
from benchmarks.workload import Workload
from charter_ops.soak import FLAT_TOLERANCE, FLAT_TOLERANCE_BYTES, memory_growth


@dataclass(frozen=True)
class Mode:
    name: str
    sites: int
    events: int  # indicators throughput workload
    peer_events: int  # the Quix Streams run (the first events of the same topics)
    latency_seconds: float
    memory_sites: int
    memory_events: int
    ingest_events: int
    replay_events: int  # 0: no long replay


QUICK = Mode("quick", 6_000, 200_000, 20_000, 50, 2_500, 33_000, 30_000, 0)
FULL = Mode("full", 6_000, 1_000_000, 100_000, 120, 10_000, 130_000, 100_000, 10_000_000)


@dataclass
class Row:
    figure: str
    value: str
    target: str = ""
    verdict: str = ""


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "MISSED")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:,.0f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the quick mode (make test): under two minutes")
    parser.add_argument("--events", type=int, default=None, help="events of the throughput run")
    parser.add_argument("--replay-events", type=int, default=None, help="events of the long replay (full mode)")
    parser.add_argument("--no-peer", action="store_true", help="leave Quix Streams out")
    parser.add_argument("--profile", action="store_true", help="py-spy the throughput run (summary printed)")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (logs, profile)")
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    if args.replay_events is not None:
        mode = Mode(**{**mode.__dict__, "replay_events": args.replay_events})
    if args.events is not None:
        mode = Mode(**{**mode.__dict__, "events": args.events})
    work = args.work or Path(tempfile.mkdtemp(prefix="charter-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    failures: list[str] = []
    began = time.perf_counter()

    def step(name: str, action: Callable[[], None]) -> None:
        print(f"... {name}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        measured = len(rows)
        try:
            action()
        except Exception:
            failures.append(name)
            rows.append(Row(name, "FAILED (see above)"))
            traceback.print_exc()
        for row in rows[measured:]:  # shown as soon as measured: a long run stopped early keeps them
            print(f"    {row.figure}: {row.value}", file=sys.stderr, flush=True)
        print(f"    {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)

    with broker(work) as bootstrap:
        ours: dict[str, float] = {}
        loaded: dict[str, object] = {}

        def throughput() -> None:
            workload = Workload(sites=mode.sites, events=mode.events)
            names, count = indicators.load(bootstrap, workload)
            loaded["names"], loaded["count"] = names, count
            result = indicators.replay(bootstrap, names, count, work, profile=args.profile)
            ours["rate"] = result.rate
            rows.append(
                Row(
                    f"indicators, events/s, one process ({count:,} events, {mode.sites:,} sites, 3 indicators, all scopes)",
                    f"{result.rate:,.0f}",
                    ">= 50,000",
                    _verdict(result.rate >= 50_000),
                )
            )
            if result.profile is not None:
                print(profile_summary(result.profile), file=sys.stderr)

        def versus_peer() -> None:
            if args.no_peer or not peer.available():
                rows.append(Row("Quix Streams 3.28.1, events/s (same topics)", "skipped (.venv-quix missing)"))
                return
            names, count = loaded["names"], int(loaded["count"])  # type: ignore[call-overload]
            events = min(count, mode.peer_events)
            theirs = peer.run(bootstrap, names, events, work)  # type: ignore[arg-type]
            ratio = ours["rate"] / theirs.rate if theirs.rate else 0.0
            rows.append(
                Row(
                    f"Quix Streams 3.28.1, events/s (first {events:,} events of the same topics)", f"{theirs.rate:,.0f}"
                )
            )
            rows.append(Row("indicators / Quix Streams", f"{ratio:.1f}x", ">= 1.5x", _verdict(ratio >= 1.5)))

        def latency() -> None:
            result = indicators.latency(bootstrap, work, sites=mode.sites, seconds=mode.latency_seconds)
            for where, values in (("charter.indicators", result.to_topic), ("/metrics", result.to_metrics)):
                p50, p99 = indicators._percentile(values, 0.5), indicators._percentile(values, 0.99)
                rows.append(
                    Row(
                        f"latency at 1,000 events/s, publish -> {where}, p50 / p99 ({len(values)} minutes closed after {indicators.WARM_UP_MINUTES} of warm-up, {mode.sites:,} sites)",
                        f"{_ms(p50)} / {_ms(p99)}",
                        "p99 <= 500 ms",
                        _verdict(p99 is not None and p99 <= 0.5),
                    )
                )

        def memory() -> None:
            result = indicators.state_memory(mode.memory_sites, mode.memory_events)
            per_10k = result.per_site * 10_000
            rows.append(
                Row(
                    f"state per 10,000 sites ({result.sites:,} sites, {result.events:,} events; registry {result.bytes_registry / result.sites:,.0f} B/site)",
                    f"{per_10k / 1e6:,.1f} MB ({result.per_site:,.0f} B/site)",
                    "<= 2 KB/site",
                    _verdict(result.per_site <= 2048),
                )
            )

        def recovery() -> None:
            workload = Workload(sites=mode.sites, events=max(40_000, mode.events // 4), seed=11)
            result = indicators.recovery(bootstrap, workload, work)
            rows.append(
                Row(
                    f"recovery after kill -9: state restored / output resumed (checkpoints {result.checkpoint_bytes / 1e6:,.1f} MB)",
                    f"{result.restored:.1f} s / {result.resumed:.1f} s",
                )
            )

        def ingest_kafka() -> None:
            rate = ingest.over_kafka(bootstrap, work, mode.ingest_events)
            rows.append(Row("ingest, events/s from the raw Kafka topics", f"{rate:,.0f}"))

        def ingest_https() -> None:
            rate = ingest.over_https(bootstrap, work, mode.ingest_events)
            rows.append(Row("ingest, events/s over HTTPS (NDJSON, 1,000 a request, 4 clients)", f"{rate:,.0f}"))

        def long_replay() -> None:
            workload = Workload(sites=mode.sites, events=mode.replay_events, seed=13)
            names, count = indicators.load(bootstrap, workload)
            # every 5 %: the flat verdict compares medians of five samples (one sample is the GC's saw-tooth)
            result = indicators.replay(bootstrap, names, count, work, samples=21)
            shown = " / ".join(f"{r / 1e6:,.0f}" for r in result.rss_bytes[::5])
            # flat as the soak test judges it: after the first quarter (the windows filling), the end
            # may exceed the start by 10 % of the peak or 32 MiB, no more
            growth = memory_growth(result.rss_bytes)
            flat = growth <= max(FLAT_TOLERANCE * max(result.rss_bytes, default=0), FLAT_TOLERANCE_BYTES)
            rows.append(
                Row(
                    f"replay of {count:,} events: events/s; RSS at 0, 25, 50, 75, 100 %",
                    f"{result.rate:,.0f}; {shown} MB",
                    "flat memory",
                    _verdict(flat),
                )
            )

        step("indicators throughput", throughput)
        if "names" in loaded:
            step("Quix Streams peer", versus_peer)
        step("latency", latency)
        step("state memory", memory)
        step("recovery", recovery)
        step("ingest over Kafka", ingest_kafka)
        step("ingest over HTTPS", ingest_https)
        if mode.replay_events:
            step("long replay", long_replay)

    print(table(rows, mode, time.perf_counter() - began))
    if failures:
        print(f"benchmarks that crashed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def table(rows: list[Row], mode: Mode, seconds: float) -> str:
    width = max(len(r.figure) for r in rows)
    value_width = max(len(r.value) for r in rows)
    lines = [
        "",
        f"charter benchmarks, {mode.name} mode ({seconds:,.0f} s), real Kafka broker",
        f"machine: {machine()}",
        "",
        f"{'figure':<{width}}  {'measured':>{value_width}}  {'target':<14} verdict",
        f"{'-' * width}  {'-' * value_width}  {'-' * 14} -------",
    ]
    lines += [f"{r.figure:<{width}}  {r.value:>{value_width}}  {r.target:<14} {r.verdict}" for r in rows]
    if mode.name == "quick":
        lines.append("(quick mode: small workloads, no 10M replay; `make bench` runs the full suite)")
    return "\n".join(lines)


def profile_summary(path: Path, top: int = 15) -> str:
    """Where the time goes: the functions of the service (and Kafka's client) by share of samples."""
    from collections import Counter  # noqa: PLC0415

    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        for frame in set(stack.split(";")):
            if "charter_indicators" in frame or "aiokafka" in frame:
                inclusive[frame] += int(count)
    out = [f"profile ({total} samples), inclusive share:"]
    out += [f"  {n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
