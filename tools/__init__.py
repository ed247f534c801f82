"""Command line, file mode, demo, evaluation and benchmarks."""
