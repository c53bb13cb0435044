"""Tests of scgrad.rl."""
