"""Data: the common record schema, real benchmark adapters, answer extraction and checking."""
