"""Converter: swaps faces in frames with a trained model and blends them back."""
