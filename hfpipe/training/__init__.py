"""What every trainer shares (Trainer, trl's SFT/DPO/Reward trainers): callbacks, checkpoints, plots, model cards."""
