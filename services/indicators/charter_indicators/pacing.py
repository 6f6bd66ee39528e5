"""When the indicators' clock flushes next: pure arithmetic, no I/O.

A flush costs in proportion to the sites, not to the events since the last one. During a
replay event time runs far ahead, and flushing at every tick would leave no time for the
events; live, a minute closes once a minute and its figures should go out at once. So
flushing gets a share of the time, as a budget of CPU seconds that refills with the wall
clock: live the budget is full and a flush follows the minute that closed, whatever the last
one cost (a heavy one, with every site's snapshots, does not hold the next minute back); in a
replay the budget runs dry and flushes are spaced so as to take ``share`` of the time.
CPU time, not wall time: a flush that waited for an absent broker cost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FlushPacer:
    """The pause before the next flush, given what the last one cost."""

    #: pause between two flushes when the budget allows (the clock's tick, seconds)
    interval: float
    #: share of the wall-clock time flushes may take, on average
    share: float = 0.2
    #: CPU seconds of flushing the budget holds at most (a burst allowed at once)
    burst: float = 5.0
    #: longest pause, however dry the budget
    max_pause: float = 30.0
    budget: float = field(init=False)
    _last: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.budget = self.burst

    def after_flush(self, cpu_seconds: float, now: float) -> float:
        """A flush ended at ``now`` (monotonic seconds) having cost ``cpu_seconds``: the pause before the next."""
        if self._last is not None:
            self.budget = min(self.burst, self.budget + self.share * (now - self._last))
        self._last = now
        self.budget -= cpu_seconds
        if self.budget >= 0:
            return self.interval
        # the wall time that refills the budget to zero
        return min(self.max_pause, max(self.interval, -self.budget / self.share))
