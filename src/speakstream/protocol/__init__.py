"""Native protocol v1: message types, codec, sans-I/O session. Imports only the stdlib."""
