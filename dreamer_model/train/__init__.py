"""Trainers and what they share: checkpoints, run logging, distributed setup, sample images."""
