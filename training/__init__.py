"""Training stage: DeepGlobe-layout datasets, augmentation, losses and the trainer (issue #3)."""
