"""Near-duplicates: MinHash signatures for text, perceptual hashes for images, LSH bands, verified pairs and clusters."""
