"""Small shared building blocks; import them directly from their modules."""
