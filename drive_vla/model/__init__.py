"""The VLA model: vision tokenizer, state encoder, prompt layout, LM fusion, planner head, generation."""

from drive_vla.model.config import LMConfig, ModelConfig, PlannerHeadConfig, VisionConfig

__all__ = ["LMConfig", "ModelConfig", "PlannerHeadConfig", "VisionConfig"]
