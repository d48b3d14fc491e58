"""Out-of-band code adapters: providers against local servers, routing, templates, callbacks."""
