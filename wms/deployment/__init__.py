"""Shipping a model: the serving container image and the Helm release on EKS."""
