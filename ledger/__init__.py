"""The mutual-credit ledger: a pure core (values, validation) and a service owning the unit of work."""
