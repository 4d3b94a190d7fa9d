"""Contracts: reviewed YAML files compiled to marshmallow schemas.

`load(root)` returns the registry and every problem found; `load_strict(root)` raises
`ContractsInvalid` instead, for services that must not start on a broken contract.
"""
from onegrid.contracts.registry import (ContractsInvalid, EventContract, Problem, Registry,
                                        load, load_strict)

__all__ = ["ContractsInvalid", "EventContract", "Problem", "Registry", "load", "load_strict"]
