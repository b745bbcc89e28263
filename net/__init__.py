"""net: an event-driven networking framework.

A reactor (one thread, one loop, runtime-chosen backend), Deferreds, transports kept apart from
protocols, flow control and framing helpers. Start with :func:`net.reactor.make_reactor`.
"""
