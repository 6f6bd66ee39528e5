"""Freed memory goes back to the system: large buffers, even after an earlier one raised glibc's
threshold, and the free pages inside a fragmented heap.

Each case runs in a fresh interpreter: the allocator's state is per process.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

# A 24 MiB buffer allocated and freed (glibc then serves anything smaller than it from the heap),
# then a 12 MiB one with a small buffer after it (so the heap cannot shrink from its top) is freed:
# the resident memory it leaves behind is what the checkpoint documents used to leave.
SCRIPT = """
import json, sys
sys.path[:0] = {paths!r}
from charter_runtime.memory import return_large_buffers

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

applied = return_large_buffers() if {apply!r} else False
big = bytearray(24 * 1024 * 1024)
del big
before = rss()
document = bytearray(12 * 1024 * 1024)
after_it = bytearray(200 * 1024)
del document
print(json.dumps({{"applied": applied, "kept": rss() - before}}))
"""

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's allocator only"
)


def _run(apply: bool, script: str = SCRIPT) -> dict[str, int]:
    """Run one case in a fresh interpreter; its last line is a JSON object of figures."""
    script = script.format(paths=sys.path, apply=apply)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    result: dict[str, int] = json.loads(out)
    return result


def test_a_freed_document_leaves_no_resident_memory_behind() -> None:
    result = _run(apply=True)
    assert result["applied"]
    assert result["kept"] < 2 * 1024 * 1024


def test_without_the_fixed_threshold_glibc_keeps_it() -> None:
    """The case the setting is for: glibc's adaptive threshold keeps the freed document resident."""
    result = _run(apply=False)
    assert result["kept"] >= 10 * 1024 * 1024


# 64 MiB of buffers of a few kilobytes (glibc serves them from the heap), one in ten kept: once
# the others are freed, the heap is mostly free chunks between live ones and cannot shrink.
FRAGMENTED = """
import json, sys, time
sys.path[:0] = {paths!r}
from charter_runtime.memory import keep_releasing_free_pages

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

released = keep_releasing_free_pages(every=1.0) is not None if {apply!r} else False
kept, passing = [], []
for n in range(32_768):
    (kept if n % 10 == 0 else passing).append(bytearray(2048))
del passing
before = rss()
time.sleep(1.6)  # its next round (the heap fragmented well within the first second)
print(json.dumps({{"released": released, "freed": before - rss()}}))
"""


def test_the_free_pages_of_a_fragmented_heap_go_back_to_the_system() -> None:
    result = _run(apply=True, script=FRAGMENTED)
    assert result["released"]
    assert result["freed"] > 32 * 1024 * 1024  # of the 58 MiB freed between the kept buffers


def test_without_the_release_a_fragmented_heap_stays_resident() -> None:
    """The case the thread is for: glibc gives back only the top of its heap."""
    result = _run(apply=False, script=FRAGMENTED)
    assert result["freed"] < 4 * 1024 * 1024
