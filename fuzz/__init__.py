"""Fuzzers for trizab's decoders and its live ports (not part of the installed package).

``python -m fuzz`` runs the coverage-guided decoder targets (:mod:`fuzz.targets`, atheris);
``python -m fuzz.live`` sends mutated frames to a real 3-member ensemble's client, quorum
and election ports while a kazoo client keeps working.
"""
