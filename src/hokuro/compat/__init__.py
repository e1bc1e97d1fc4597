"""The seed systems' names (buelon, datapipe) over hokuro's own."""
