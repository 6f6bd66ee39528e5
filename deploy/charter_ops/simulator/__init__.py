"""Seeded, deterministic network traffic (``charter simulate``, SPEC section 8).

``networks`` lays out the simulated networks and their site registry, ``generator`` is
the pure traffic generator (seed, sites and a span of time in, events out), ``scenarios``
says when a network degrades, and ``publish`` takes the events to Kafka or to files,
live or as fast as possible.
"""

from charter_ops.simulator.generator import TrafficConfig, TrafficGenerator, national_peak_rate
from charter_ops.simulator.networks import NETWORKS, SimSite, build_registry
from charter_ops.simulator.scenarios import Degradation, parse_duration

__all__ = [
    "NETWORKS",
    "Degradation",
    "SimSite",
    "TrafficConfig",
    "TrafficGenerator",
    "build_registry",
    "national_peak_rate",
    "parse_duration",
]
