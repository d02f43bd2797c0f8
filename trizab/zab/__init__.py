"""The ZAB core: a sans-I/O replica and the pieces it is made of.

``trizab.zab.peer.Peer`` is the replica (see that module for the protocol);
``trizab.zab.ready`` is the contract with its driver (persist, then send, then
apply, then ``advance``); ``messages``, ``zxid``, ``quorum`` and ``vote`` are the
small pure parts.  Nothing is imported here, so that the election plugin
interface (``trizab.election``) can use the messages without a cycle.
"""
