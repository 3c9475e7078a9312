"""Training: TrainConfig recipes, the LightningModule, optimisers and schedules, LoRA and freezing, checkpoints."""

from drive_vla.training.config import TrainConfig, load_train_config

__all__ = ["TrainConfig", "load_train_config", "train"]


def __getattr__(name: str):
    if name == "train":  # keep `import drive_vla.training` light: Lightning loads only when training
        from drive_vla.training.run import train

        return train
    raise AttributeError(name)
