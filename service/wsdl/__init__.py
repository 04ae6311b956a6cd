"""The published contract: namespaces, Spyne types and the WSDL snapshot."""
