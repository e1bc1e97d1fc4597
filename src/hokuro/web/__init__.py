"""The dashboard (`hokuro ui`): Starlette pages over the admin layer."""
