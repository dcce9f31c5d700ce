"""Tests of one room (see tests/test_architecture.py for the rooms)."""
