"""The any-length inpainting algorithm, from the graph's inputs to the output file: ``clip_inputs`` and
``preprocess`` (frames and masks), ``masks`` (mask checks and the mask pre-pass), ``crop`` (crop to the mask: the model's box), ``windows`` (window planning), ``sampling`` (windows x
steps with the branch and ID resampling), ``id_state`` / ``id_state_io`` (the state carried between windows and
runs), ``parts`` (a clip cut into chained parts), ``first_frame`` (frame 0 for an image inpainter), ``composite``
(the pixel-exact background), ``video_out`` (the streamed output VIDEO) and ``preview`` (latent previews). May
import ``base``, ``model``, ``video`` and ``checkpoints``."""
