"""OneGrid: many grids as one. The shared kernel of the county bus services.

Layout: `envelope` (CloudEvents on every message), `contracts` (reviewed YAML compiled to
marshmallow), `tenant` (a county's manifest), `domain` (pure logic, no I/O), `adapters`
(RabbitMQ, Redis, nameko and Prometheus glue), `cli` (the `onegrid` command).
"""

__version__ = "0.1.0"
