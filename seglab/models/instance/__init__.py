"""Instance segmentation models (to come)."""
