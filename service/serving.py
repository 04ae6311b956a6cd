"""Serve the app with gunicorn (the production serving configuration).

The app is built in each worker after the fork (no preload), so no database
connection or key handle is shared between processes.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from service.settings import Settings


class GunicornServer(BaseApplication):
    """A gunicorn application whose config comes from :class:`Settings`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        """Set gunicorn's options from the settings."""
        s = self.settings
        options: dict[str, Any] = {
            "bind": f"{s.host}:{s.port}",
            "workers": s.workers,
            "threads": s.threads,
            "worker_class": "gthread" if s.threads > 1 else "sync",
            "keepalive": s.keepalive_s,
            "graceful_timeout": 30,
            "timeout": 60,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": s.log_level.lower(),
            "proc_name": "azersu-statement",
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        """Build the app in the worker."""
        from service.app import create_app

        return create_app(self.settings)


def serve(settings: Settings) -> None:
    """Check the configuration once, then run gunicorn until it is stopped.

    Building the app in the master first turns a configuration error into one
    clear line before any worker starts (a worker that fails to boot would
    otherwise be restarted in a loop).
    """
    from service.app import create_app

    create_app(settings).close()
    GunicornServer(settings).run()
