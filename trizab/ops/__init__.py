"""Operator commands of the ``trizab`` command line: status, purge, snapshot."""
