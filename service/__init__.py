"""Azərsu e-service for e-gov.az: a residential water subscriber's last 12 months.

The SOAP service ``BillingStatementService`` answers ``GetBillingStatement``
with the subscriber's invoices and payments read from Azərsu's billing
database.  Build it with :func:`service.app.create_app`.
"""

__version__ = "0.2.0"

from service import spyne_compat

# Before anything imports Spyne: its bundled six needs this on Python 3.12+.
spyne_compat.install()
