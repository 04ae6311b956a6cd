"""Serve the app with gunicorn (the production serving configuration).

* The app is built in each worker after the fork (no preload), so no database
  connection is shared between processes; the trust material (key,
  certificate, trust bundle) is read and checked once in the master and
  inherited by the workers (:mod:`service.signing.material`).
* SIGHUP: the master re-reads and checks the trust material, then gunicorn
  starts new workers and retires the old ones gracefully (key and CA rotation
  without downtime).  Material that doesn't check out is refused and logged;
  the workers keep the material they had.
* SIGTERM: graceful shutdown; requests in flight finish (``graceful_timeout``).
* Metrics: prometheus_client's multiprocess mode, in a fresh folder under
  ``var/`` that the master creates; a dead worker's gauges are dropped.
* Logs: JSON lines on stderr (:mod:`service.json_logging`); the gateway
  writes one line per request, so gunicorn writes no access line.
* Workers: :class:`service.worker.ServiceWorker`, gunicorn's gevent worker
  with per-client limits, in every configuration.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import shutil
import ssl
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger

from service.errors import ConfigurationError
from service.json_logging import JsonFormatter, configure_logging
from service.settings import Settings
from service.signing.material import TrustMaterial, read_trust_material

log = logging.getLogger("service.serving")
GRACEFUL_TIMEOUT_S = 30
WORKER_CLASS = "service.worker.ServiceWorker"


class GunicornServer(BaseApplication):
    """A gunicorn application whose config comes from :class:`Settings`."""

    def __init__(self, settings: Settings, material: TrustMaterial) -> None:
        self.settings = settings
        self.material = material
        super().__init__()

    def load_config(self) -> None:
        """Set gunicorn's options from the settings."""
        s = self.settings
        options: dict[str, Any] = {
            "bind": f"{s.host}:{s.port}",
            "workers": s.workers,
            "worker_class": WORKER_CLASS,
            "worker_connections": s.worker_connections,
            "keepalive": s.keepalive_s,
            "graceful_timeout": GRACEFUL_TIMEOUT_S,
            "timeout": 60,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": s.log_level.lower(),
            "proc_name": "azersu-statement",
            "logconfig_dict": _gunicorn_logging(s.log_level),
            "logger_class": NoAccessLineLogger,
            "on_reload": self._on_reload,
            "child_exit": _child_exit,
            # gunicorn's control socket is one path per user: two services on one
            # host would clash, and the service doesn't use it.
            "control_socket_disable": True,
        }
        if s.tls_enabled:
            # Client certificates are required and must chain to the client CA:
            # the TLS handshake authenticates the caller (WS-Security off mode).
            options.update(
                certfile=s.tls_cert,
                keyfile=s.tls_key,
                ca_certs=s.tls_client_ca,
                cert_reqs=ssl.CERT_REQUIRED,
                do_handshake_on_connect=True,
                ssl_context=handshake_in_the_worker,
            )
        for key, value in options.items():
            self.cfg.set(key, value)

    def _on_reload(self, _arbiter: Any) -> None:
        """Re-read the trust material on SIGHUP; keep the old one if the new is bad."""
        try:
            self.material = read_trust_material(self.settings)
        except ConfigurationError as exc:
            log.error("SIGHUP: new keys refused, the workers keep the current ones: %s", exc)
        else:
            log.info("SIGHUP: new signing key, certificate and trust bundle loaded")

    def load(self) -> Any:
        """Build the app in the worker, then freeze what it built out of the GC's sight."""
        from service.app import create_app

        app = create_app(self.settings, self.material)
        # Everything built so far (modules, Spyne's interface, the schemas) lives
        # as long as the worker: gc.freeze() moves it to the permanent
        # generation, so that a full collection under load walks only the
        # objects of requests, not the whole application (tens of ms each).
        gc.collect()
        gc.freeze()
        return app


def handshake_in_the_worker(conf: Any, default_factory: Any) -> ssl.SSLContext:
    """Return gunicorn's TLS context, set not to handshake while the connection is accepted.

    gevent's server would otherwise run the handshake before the worker sees
    the connection, with no deadline and outside the per-client limit: a
    client that connects and sends nothing would hold a slot for good.
    :meth:`service.worker.ServiceWorker.handle` does the handshake instead,
    counted, within the keep-alive time and sheddable.
    """
    context = default_factory()
    context.wrap_socket = functools.partial(context.wrap_socket, do_handshake_on_connect=False)
    return context


def _child_exit(_arbiter: Any, worker: Any) -> None:
    from service.metrics import mark_worker_dead

    mark_worker_dead(worker.pid)


class NoAccessLineLogger(GunicornLogger):
    """gunicorn's logger without its access line.

    The gateway logs every request once, with its request id and outcome
    (:mod:`service.soap_gateway`), and the HTTP refusals before it are
    audited (:mod:`service.worker`).  A logging configuration
    (``logconfig_dict``) turns gunicorn's access line on, and gunicorn then
    formats one for every request only to drop it below the level.
    """

    access_log_enabled = False

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        """Write nothing: the gateway's request line says it."""


def _gunicorn_logging(level: str) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json"},
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["stderr"], "propagate": False},
            "service": {"level": level.upper(), "handlers": ["stderr"], "propagate": False},
            "spyne": {"level": "CRITICAL"},
        },
    }


def serve(settings: Settings) -> None:
    """Check the configuration once, then run gunicorn until it is stopped.

    Building the app in the master first turns a configuration error into one
    clear line before any worker starts (a worker that fails to boot would
    otherwise be restarted in a loop).
    """
    configure_logging(settings.log_level)
    metrics_dir = Path(settings.var_dir) / "metrics"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    multiproc = tempfile.mkdtemp(prefix=f"gunicorn-{os.getpid()}-", dir=metrics_dir)
    # Must be set before prometheus_client is first imported (by service.app).
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiproc
    master_pid = os.getpid()
    try:
        material = read_trust_material(settings)
        from service.app import create_app

        create_app(settings, material).close()
        # That app was the master's: its metric files must not outlive it (a
        # "livemin" gauge of the master, never updated, would read 0 forever).
        from service.metrics import mark_worker_dead

        mark_worker_dead(master_pid)
        GunicornServer(settings, material).run()
    finally:
        # Workers are forked inside run() and leave through this frame too:
        # only the master removes the folder.
        if os.getpid() == master_pid:
            shutil.rmtree(multiproc, ignore_errors=True)
