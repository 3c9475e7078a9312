"""drive-vla: a vision-language-action stack for autonomous driving."""

__version__ = "0.1.0"
