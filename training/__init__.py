"""Training stage: tensor datasets, augmentation, losses and the trainer."""
