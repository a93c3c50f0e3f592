"""Putting a trained model into use: int8 quantization (``quantize``), GGUF export (``gguf``), and
side-by-side measures of two models (``compare``). Import the submodules: each needs its optional
package (torchao, gguf)."""
