"""The run engine: plans executed over inputs as jobs in the ledger (batches and pipelines).

The Spot hands this layer its parts (ledger, blob store, codec, clock, leases) and its
marked functions as steps; nothing here imports the engine.
"""
