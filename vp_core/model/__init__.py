"""The dual-branch VideoPainter model: CogVideoX-I2V backbone, context-encoder branch, ID-resample attention."""
