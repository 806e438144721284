"""Training and evaluation: one explicit loop, no hooks."""
