"""The native protocol: messages, frames, errors, and the sans-I/O session (no sockets).

Imports only the standard library and ``speakstream.segmenter`` (the sans-I/O core below
it); nothing above it, and never the package root.
"""

PROTOCOL_VERSION = 1
