"""Tooling beside the runtime: never imported by `common` or a service, never in the image.

`simulator` (seedable payment flows), `demo` (`make demo`), `testing` (the brokers,
PostgreSQL and SMTP server the tests and the demo start, and the pytest plugin), `contracts`
and `asyncapi` (`make contracts`: the JSON Schemas and AsyncAPI document in `contracts/`), and
`cli` (the `dreamscape` commands that are not operational: `simulate`, `broker`).
"""
