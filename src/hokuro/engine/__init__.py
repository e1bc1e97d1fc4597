"""The Spot, marking (the call path), task views, flights, leases, owners."""
