"""Read-only access to Azərsu's billing database (the billing data contract)."""
