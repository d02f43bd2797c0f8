"""Compat runner: kazoo's test suite, the differential tester and Java-client transcripts vs trizab."""
