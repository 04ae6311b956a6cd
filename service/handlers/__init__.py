"""The SOAP operations: thin Spyne methods over the billing query modules."""
