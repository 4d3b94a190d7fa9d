"""Adapters: the only place that imports nameko, kombu, redis or prometheus_client."""
