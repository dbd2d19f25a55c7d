"""The model artifact as every part reads it: manifest, labels, preprocessing."""
