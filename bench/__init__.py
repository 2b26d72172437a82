"""The benchmark (not a test): python bench/run.py --help."""
