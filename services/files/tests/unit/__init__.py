"""Unit tests: pure functions and the multipart reader."""
