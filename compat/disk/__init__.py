"""Disk fault scenarios on real server processes (trizab and Apache ZooKeeper alike)."""
