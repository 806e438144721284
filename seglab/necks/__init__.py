"""Necks map a backbone's feature dict to another feature dict (FPN, ...); import them from their modules."""
