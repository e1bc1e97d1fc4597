"""Maintenance of a Spot's records: the service, and replaying failures."""
