"""The billing deadline answers in time, and in a gevent worker stops no other connection.

A read that blocks in C (cx_Oracle's Oracle Client calls) must run on a
native thread there: on a greenlet it would stop the worker's loop, and the
deadline itself could fire only after the read returned.  Each case runs in
a child process patched as the gunicorn worker is, with a greenlet ticking
beside the stuck read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from service.billing.deadline import BillingDeadline
from service.errors import BillingUnavailable
from tests.conftest import ROOT

#: The child: patch, start a ticker, run a 1.5 s read that blocks in C under a 0.3 s deadline.
CHILD = """
import json, sys, time
from gevent import monkey
monkey.patch_all()
import gevent
from service.billing.deadline import BillingDeadline
from service.errors import BillingUnavailable

blocking_sleep = monkey.get_original("time", "sleep")  # waits in C, out of gevent's sight
ticks = []

def tick():
    while True:
        ticks.append(time.monotonic())
        gevent.sleep(0.01)

ticker = gevent.spawn(tick)
gevent.sleep(0.05)
deadline = BillingDeadline(0.3, workers=2, driver_blocks_in_c=sys.argv[1] == "native")
started = time.monotonic()
try:
    deadline.run(lambda: blocking_sleep(1.5))
    outcome = "returned"
except BillingUnavailable:
    outcome = "BillingUnavailable"
answered = time.monotonic()
during = sum(1 for t in ticks if started < t < answered)
print(json.dumps({"outcome": outcome, "waited_s": answered - started, "ticks": during}))
"""


def _run_child(threads: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, threads],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_read_that_blocks_in_c_runs_on_a_native_thread_under_gevent() -> None:
    result = _run_child("native")
    assert result["outcome"] == "BillingUnavailable"
    assert float(str(result["waited_s"])) < 1.5  # the deadline, not the read, ended the wait
    assert int(str(result["ticks"])) >= 5  # the loop kept running (about 30 ticks in 0.3 s)


def test_on_a_greenlet_the_same_read_stops_the_worker_and_its_deadline() -> None:
    # The control: why cx_Oracle's reads must not run on greenlets.
    result = _run_child("greenlet")
    assert result["outcome"] == "returned"  # the deadline could not fire
    assert float(str(result["waited_s"])) >= 1.5
    assert result["ticks"] == 0


def test_a_read_past_the_deadline_gets_billing_unavailable_without_gevent() -> None:
    deadline = BillingDeadline(0.2, workers=1)
    started = time.monotonic()
    with pytest.raises(BillingUnavailable) as late:
        deadline.run(lambda: time.sleep(1.0))
    assert time.monotonic() - started < 1.0
    assert "within 0.2 s" in str(late.value)
    deadline.close()


def test_a_read_within_the_deadline_returns_its_result() -> None:
    deadline = BillingDeadline(2.0, workers=1)
    assert deadline.run(lambda: 42) == 42
    deadline.close()
