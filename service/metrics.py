"""Prometheus metrics of the service, served at ``GET /metrics``.

Under gunicorn every worker is a process of its own, so the counters use
prometheus_client's multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` is set
(``azersu-statement serve`` sets it to a fresh folder under ``var/``): any
worker answering ``/metrics`` reports the sum over all of them.  Without it
(tests, a single process) each app has a registry of its own.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2, 2.5, 5.0, 10.0)
#: An audit commit normally takes a few milliseconds; 0.1 s is the bound it is held to.
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The service's counters, histogram and gauges."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        # In multiprocess mode values live in files, not in a registry.
        self.registry = CollectorRegistry()
        registry = None if self.multiprocess else self.registry
        self.requests = Counter(
            "azersu_requests",
            "SOAP requests by outcome: a Status, a fault code or HTTP_<status>",
            ["outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "azersu_request_duration_seconds",
            "Time from receiving a SOAP request to sending its answer",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.signature_failures = Counter(
            "azersu_signature_failures",
            "Requests refused by the WS-Security check, by reason",
            ["reason"],
            registry=registry,
        )
        self.database_errors = Counter(
            "azersu_database_errors",
            "Failed operations on the billing, audit or replay store",
            ["store"],
            registry=registry,
        )
        self.connections_closed = Counter(
            "azersu_connections_closed",
            "Connections the server closed to protect itself: per_client_limit, shed",
            ["reason"],
            registry=registry,
        )
        self.verify_lookups = Counter(
            "azersu_verify_lookups",
            "Lookups on the public verification page, by channel (page, json, file) and "
            "result (VALID, REVOKED, NOT_FOUND, NOT_VERIFIED, RATE_LIMITED, UNAVAILABLE)",
            ["via", "result"],
            registry=registry,
        )
        self.audit_commit = Histogram(
            "azersu_audit_commit_seconds",
            "Time of one commit of grouped audit records: the writer lock, the insert, the commit",
            buckets=COMMIT_BUCKETS,
            registry=registry,
        )
        self.audit_commit_max = Gauge(
            "azersu_audit_commit_max_seconds",
            "The slowest audit commit since the service started",
            registry=registry,
            # Also of workers that have exited: the slowest is the slowest.
            multiprocess_mode="max",
        )
        self._slowest_commit_s = 0.0
        self.certificate_days_left = Gauge(
            "azersu_signing_certificate_days_left",
            "Days until the service's signing certificate expires",
            registry=registry,
            # Only workers set it, when scraped: the live minimum is the truth.
            multiprocess_mode="livemin",
        )

    def observe_audit_commit(self, seconds: float) -> None:
        """Count one audit commit's time (called by the audit store's committer)."""
        self.audit_commit.observe(seconds)
        if seconds > self._slowest_commit_s:
            self._slowest_commit_s = seconds
            self.audit_commit_max.set(seconds)

    def render(self) -> bytes:
        """Return the metrics in the Prometheus text format."""
        if self.multiprocess:
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def mark_worker_dead(pid: int) -> None:
    """Tell the multiprocess collector that a worker is gone (gunicorn child_exit)."""
    if os.environ.get(MULTIPROC_ENV):
        prometheus_multiprocess.mark_process_dead(pid)
