"""Deployment of tpmap: the local stack (deploy.local); container manifests live beside it."""
