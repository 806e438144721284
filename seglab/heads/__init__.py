"""Heads map feature maps to class logits; import them from their modules."""
