"""The zeep client posts to the address it is given, never to the one a WSDL names."""

from __future__ import annotations

import dataclasses

from service.app import create_app
from service.client import StatementClient
from tests import billing_fixtures as bf


def test_call_posts_to_the_given_url_not_to_the_wsdl_address(
    settings, serve_app, portal_identity, trust
) -> None:
    # The WSDL names an address where nothing listens (as a poisoned WSDL
    # would name the attacker's): the call must still reach the real service.
    app = create_app(dataclasses.replace(settings, public_url="http://127.0.0.1:9/poisoned/soap"))
    server = serve_app(app)
    client = StatementClient(server.url, portal_identity, trust)
    assert client.zeep.wsdl.services  # the WSDL was read...
    wsdl_address = next(iter(client.zeep.wsdl.services.values())).ports
    assert "127.0.0.1:9" in str(next(iter(wsdl_address.values())).binding_options["address"])
    result = client.call(bf.FULL, bf.FIN)  # ...and ignored
    assert result.response.Status == "OK"
    assert app.audit.search(code=bf.FULL)[0].outcome == "OK"
