"""Other engines that execute a run's jobs while the ledger keeps the books (Celery)."""
