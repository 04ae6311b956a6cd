"""gunicorn's configuration as ``serve`` sets it: the logger writes no access line.

The gateway logs every request once; a logging configuration (which
``serve`` passes for JSON lines) turns gunicorn's own access line on, and
gunicorn then formats one for every request only to drop it.
"""

from __future__ import annotations

import json
import logging

from gunicorn.glogging import Logger as GunicornLogger

from service.json_logging import JsonFormatter
from service.serving import GunicornServer, NoAccessLineLogger
from service.settings import Settings
from service.signing.material import read_trust_material


def test_serve_uses_a_logger_without_the_access_line(base_settings: Settings) -> None:
    server = GunicornServer(base_settings, read_trust_material(base_settings))
    assert server.cfg.logger_class is NoAccessLineLogger
    assert server.cfg.logconfig_dict  # the configuration that turns gunicorn's access line on
    assert GunicornLogger(server.cfg).access_log_enabled  # the control: gunicorn's own logger
    logger = NoAccessLineLogger(server.cfg)
    assert not logger.access_log_enabled


def test_a_json_line_keeps_its_extras_without_the_callers_frame() -> None:
    record = logging.LogRecord("service.soap_gateway", logging.INFO, "", 0, "request", (), None)
    record.request_id = "0af9c229"
    record.outcome = "OK"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "request"
    assert (line["request_id"], line["outcome"]) == ("0af9c229", "OK")
    assert {"pathname", "funcName", "lineno", "threadName", "processName"}.isdisjoint(line)
