"""Core shared by serving and training: image decoding, preprocessing, the
model manifest and the LiteRT classifier. No function- or trainer-specific
code lives here, and nothing here imports TensorFlow."""
