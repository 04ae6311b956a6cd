"""The WSGI entry point for gunicorn: ``gunicorn service.wsgi:application``.

Importing this module builds the app from the environment (``AZERSU_*``);
it is the only module that builds anything at import time.
"""

from service.app import create_app

application = create_app()
