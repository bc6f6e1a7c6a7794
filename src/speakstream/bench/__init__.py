"""Benchmarks: latency, encoders and speech quality, each runnable on its own."""
