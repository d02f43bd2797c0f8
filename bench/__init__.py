"""Benchmarks (not tests): the raw-frame load generator and its Apache ZooKeeper comparison."""
