"""Outputs of a run: the terminal verdict and report files."""
