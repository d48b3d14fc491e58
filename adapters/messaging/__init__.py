"""Out-of-band codes: phone numbers, templates, providers, routing and delivery callbacks."""
