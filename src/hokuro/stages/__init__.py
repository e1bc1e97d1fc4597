"""Stages (datapipe): prepare / process / finish, flow control, output sessions, lineage."""
