"""Tessera's domain: pure event-sourced aggregates, no I/O, clock, crypto or framework."""
