"""asclab: acoustic scene classification, the published DCASE systems as one toolkit."""

__version__ = "0.1.0"
