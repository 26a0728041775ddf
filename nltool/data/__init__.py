"""Labelled data: DeepGlobe-layout discovery, validation and reading, and synthetic datasets."""
