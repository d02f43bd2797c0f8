"""The ZAB core: a sans-I/O replica and the pieces it is made of.

``trizab.zab.peer.Peer`` is the replica (see that module for the protocol; its code
is split by owner into the ``peer_*`` modules, as that module's *Layout* says);
``trizab.zab.ready`` is the contract with its driver (persist, then send, then
apply, then ``advance``); ``trizab.zab.election`` is the interface of the election
plugins the peer runs while LOOKING; ``messages``, ``zxid``, ``quorum`` and
``vote`` are the small pure parts.  Nothing is imported here, so that importing
one module (an election plugin imports ``election`` and ``messages``) does not
load the whole peer.
"""
