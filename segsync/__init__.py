"""segsync: Cargo segments kept as YAML in git, validated, planned and applied."""

__version__ = "0.1.0"
