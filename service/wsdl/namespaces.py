"""XML namespaces and names of the contract, in one place."""

#: Target namespace of the service, its types and the Statement.
TNS = "http://azersu.az/egov/billing-statement/v1"
SERVICE_NAME = "BillingStatementService"
OPERATION = "GetBillingStatement"
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
