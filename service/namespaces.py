"""XML namespaces and names the service speaks, in one place.

The contract's own (target namespace, service and operation names), SOAP
1.1's, WS-Security's and XML-DSig's with their algorithm identifiers, and
X-Road 4.0's.  Every module takes them from here; this module imports
nothing, so the trust code and the contract can use it without reaching up.
"""

from __future__ import annotations

# --- The contract ---------------------------------------------------------------------------
#: Target namespace of the service, its types and the Statement.
TNS = "http://azersu.az/egov/billing-statement/v1"
SERVICE_NAME = "BillingStatementService"
OPERATION = "GetBillingStatement"
#: The service's version, published as ``xrd:version`` in the WSDL and named by X-Road callers.
SERVICE_VERSION = "v1"

# --- SOAP 1.1, WSDL 1.1 and XML Schema ---------------------------------------------------------
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
XS = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

# --- WS-Security 1.1 and XML-DSig --------------------------------------------------------------
DS = "http://www.w3.org/2000/09/xmldsig#"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WSSE11 = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"

X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
BASE64_BINARY = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)

# Algorithms (W3C XMLDSig, RFC 6931).
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"

NSMAP_DS = {"ds": DS}

# --- X-Road 4.0 (message protocol) ---------------------------------------------------------------
XRD = "http://x-road.eu/xsd/xroad.xsd"
XID = "http://x-road.eu/xsd/identifiers"
REPR = "http://x-road.eu/xsd/representation.xsd"
