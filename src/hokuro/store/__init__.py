"""Backends behind one protocol each: ledgers, blob stores, limit stores."""
