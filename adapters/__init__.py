"""Adapters: the ports implemented with concrete technology."""
