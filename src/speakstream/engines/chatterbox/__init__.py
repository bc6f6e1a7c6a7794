"""Resemble AI's Chatterbox as a speakstream engine (the ``chatterbox`` extra).

Importing this package costs nothing: PyTorch and ``chatterbox-tts`` are imported by
``engine`` (the registry's target) and the modules it uses, so the stdlib-only
``uploads`` serves the server's upload endpoint without the extra.
Modules: ``checkpoint`` (files, device, loading), ``tokens`` (speech tokens one step at
a time), ``vocoder`` (tokens to audio in pieces), ``voices`` (conditionals per voice),
``engine`` (the ``Engine``), ``uploads`` (where uploaded reference recordings live),
``random_checkpoint`` (a random-weight checkpoint of the real architecture, for tests
and benchmarks).
"""
