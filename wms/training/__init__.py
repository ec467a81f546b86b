"""Training a U-Net with PyTorch and exporting it to ONNX. Plain PyTorch, no orchestration."""
