"""Features, labels, model zoo, evaluation, segmentation and the model registry."""
