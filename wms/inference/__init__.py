"""Turning a photo into a mask, and what the service needs around it: numpy, Pillow, SciPy and prometheus-client, no torch.

The serving image ships this package whole; it imports nothing else of wms."""
