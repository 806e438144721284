"""Panoptic segmentation models (to come)."""
