"""Helpers the tests share: one copy each, imported by the tests that need them."""
