"""COMPACT: compatibility-aware multi-teacher chain-of-thought distillation."""
__version__ = "0.1.0"
