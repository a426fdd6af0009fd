"""Training room: fine-tuning VideoPainter's two trained parts as the reference trains them (issue #27).

Owns the training step (``step``: pixels -> latents -> branch + backbone -> the reference's x0-space loss), the
trainable ID-resample LoRA (``lora``), the reference's random mask transforms (``mask_transforms``), the optimizer
and learning-rate schedule (``optim``), the datasets and latent cache (``data``) and the accelerate loop with exact
resume (``trainer``).

Room order: above ``pipeline`` and ``evaluation``; it may import every room below it (base, model, video,
checkpoints, pipeline, evaluation). It reuses the sampler's model code (``vp_core.model``: one definition of the
backbone, the branch and ID-resample attention; the LoRA is ComfyUI's own ``weight_adapter`` maths, as the sampler
applies it). ``conformance`` sits above it (it runs the training-step cases).
"""
