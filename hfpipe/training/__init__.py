"""Pretraining on transformers' Trainer: arguments, callbacks, checkpoints, throughput and plots."""
