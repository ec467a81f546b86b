"""Serving a model: archives and a TorchServe on this machine, its nginx front door, smoke tests, batch masks."""
