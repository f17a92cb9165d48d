"""The chaos drill (`make chaos`): faults injected into the running stack under traffic."""
