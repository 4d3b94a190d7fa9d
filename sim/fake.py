"""Valid sample data for any contract: onegrid.contracts.fake (the AsyncAPI examples use it too)."""

from onegrid.contracts.fake import CST, sample_field, sample_object, sample_regex

__all__ = ["CST", "sample_field", "sample_object", "sample_regex"]
