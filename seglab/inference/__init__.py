"""Inference: predictors, ONNX export."""
