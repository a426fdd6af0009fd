"""Video files read lazily: ``video_io`` (probing, frame sources over files and tensors, frame-rate sampling, mask
conversion, rotation) and ``video_seek`` (the keyframes a reader may seek to exactly). PyAV underneath. May import
``base`` only; knows nothing of models or of the inpainting algorithm."""
