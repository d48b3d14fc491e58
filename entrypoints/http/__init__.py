"""The Litestar HTTP app: JSON API, problem details, OpenAPI 3.1."""
