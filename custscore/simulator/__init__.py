"""Synthetic customers and purchase events with known ground truth."""
