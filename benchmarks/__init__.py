"""Speed and memory benchmarks, side by side with the peer libraries (``python -m benchmarks``)."""
