"""More than one node: the bus between nodes, node liveness, and routing a call's commands
to the node that owns it. With no Redis configured the same code runs on an in-process
bus (one node, the embedded default)."""
