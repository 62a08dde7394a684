"""The simulator's endpoint families, one module each; the route table is in model.py."""
