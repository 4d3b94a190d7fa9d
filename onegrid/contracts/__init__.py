"""Contracts: reviewed YAML files compiled to marshmallow schemas.

`load(root, sections)` returns the registry and every problem found; `load_strict(root, sections)`
raises `ContractsInvalid` instead, for services that must not start on a broken contract. The
`sections` check the tenant manifests' parts the domain owns: onegrid.app.registry passes them.
"""

from onegrid.contracts.registry import (
    ContractsInvalid,
    EventContract,
    Overlay,
    Problem,
    Registry,
    SectionCheck,
    load,
    load_strict,
)

__all__ = ["ContractsInvalid", "EventContract", "Overlay", "Problem", "Registry", "SectionCheck", "load", "load_strict"]
