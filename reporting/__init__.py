"""Batch reports over the classification records (used by ``fashionctl report``)."""
